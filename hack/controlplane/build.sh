#!/usr/bin/env bash
# Builds the real components the tests and `npm run dev` need from pinned Go
# modules (no Docker here): etcd, kube-apiserver, kube-controller-manager and
# OpenBao. Binaries are cached under $FAMILYHUB_CACHE/bin/<name>-<version>, so
# a second run is a no-op. Usage: build.sh [etcd|kubernetes|openbao|traefik|all]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${FAMILYHUB_CACHE:-$HOME/.cache/familyhub}"
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -trimpath" CGO_ENABLED=0
# Two cores: keep the Go compiler from starving whatever else runs (tests, CI).
export GOMAXPROCS="${GOMAXPROCS:-2}"

modver() { # module version pinned in a wrapper go.mod
  awk -v m="$2" '$1==m {print $2; exit} $1=="require" && $2==m {print $3; exit}' "$root/hack/go/$1/go.mod"
}

build() { # wrapper, package, binary name, version, extra ldflags
  local wrapper="$1" pkg="$2" name="$3" ver="$4" ldx="${5:-}"
  local out="$cache/bin/$name-$ver/$name"
  if [[ -x "$out" ]]; then echo "$out"; return; fi
  mkdir -p "$(dirname "$out")"
  # One build per binary even when hack/test.sh's background build and a
  # suite ask at once: the second waits for the first.
  (
    flock 9
    if [[ -x "$out" ]]; then exit 0; fi
    echo "building $name $ver (first run only; cached afterwards)" >&2
    local start=$SECONDS
    (cd "$root/hack/go/$wrapper" && go build -ldflags "-s -w $ldx" -o "$out.tmp.$$" "$pkg")
    mv "$out.tmp.$$" "$out"
    echo "built $name $ver in $((SECONDS - start))s" >&2
  ) 9>"$out.lock"
  echo "$out"
}

what="${1:-all}"
if [[ $what == etcd || $what == all ]]; then
  build etcd go.etcd.io/etcd/server/v3 etcd "$(modver etcd go.etcd.io/etcd/server/v3)"
fi
if [[ $what == kubernetes || $what == all ]]; then
  v="$(modver kubernetes k8s.io/kubernetes)"
  build kubernetes k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver "$v"
  build kubernetes k8s.io/kubernetes/cmd/kube-controller-manager kube-controller-manager "$v"
fi
if [[ $what == openbao || $what == all ]]; then
  v="$(modver openbao github.com/openbao/openbao)"
  build openbao github.com/openbao/openbao bao "2.4.0-${v##*-}"
fi
if [[ $what == traefik || $what == all ]]; then
  # The gateway the Route tests serve real traffic through (~5.5 min cold).
  v="$(modver traefik github.com/traefik/traefik/v3)"
  build traefik github.com/traefik/traefik/v3/cmd/traefik traefik "$v" "-X github.com/traefik/traefik/v3/pkg/version.Version=$v"
fi
