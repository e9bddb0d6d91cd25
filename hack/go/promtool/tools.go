//go:build tools

// Keeps the promtool command in this module's build list.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
