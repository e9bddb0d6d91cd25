//go:build tools

// Package tools pins the container runtime the local node runs pods on
// (hack/node/build.sh builds containerd, its runc shim and ctr from here).
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
