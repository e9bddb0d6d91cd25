//go:build tools

// Keeps the versitygw command in this module's build list.
package tools

import _ "github.com/versity/versitygw/cmd/versitygw"
