//go:build tools

// Package tools pins the cluster DNS server of the local node.
package tools

import _ "github.com/coredns/coredns"
