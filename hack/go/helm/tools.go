//go:build tools

// Package tools pins the helm client `npm run dev` and the node tests install
// the operator chart with.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
