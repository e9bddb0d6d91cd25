//go:build tools

// Package tools pins the Traefik command built by hack/controlplane/build.sh
// (target `traefik`): the real gateway the Route tests send traffic through.
package tools

import _ "github.com/traefik/traefik/v3/cmd/traefik"
