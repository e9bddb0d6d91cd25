//go:build tools

// Package tools pins the bao command built by hack/controlplane/build.sh.
package tools

import _ "github.com/openbao/openbao"
