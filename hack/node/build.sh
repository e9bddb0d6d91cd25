#!/usr/bin/env bash
# Builds the node's components from pinned Go modules (no Docker, no release
# tarballs): kubelet, kube-scheduler, kube-proxy (hack/go/kubernetes, the same
# wrapper as the control plane), containerd + its runc shim + ctr
# (hack/go/containerd), helm (hack/go/helm), CoreDNS (hack/go/coredns), and the
# static pause binary from the kubernetes module's pause.c. runc and the CNI
# plugins come from Debian (hack/ensure-packages.sh).
#
# Cached under $FAMILYHUB_CACHE/bin/<name>-<version>/, so a second run is a
# no-op. Prints one "<name> <path>" line per binary on stdout.
# Usage: build.sh [kubernetes|containerd|helm|coredns|pause|all]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${FAMILYHUB_CACHE:-$HOME/.cache/familyhub}"
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -trimpath" CGO_ENABLED=0
export GOMAXPROCS="${GOMAXPROCS:-2}"

modver() { # module version pinned in a wrapper go.mod
  awk -v m="$2" '$1==m {print $2; exit} $1=="require" && $2==m {print $3; exit}' "$root/hack/go/$1/go.mod"
}

# build <wrapper> <package> <name> <cache dir> [ldflags...]
build() {
  local wrapper="$1" pkg="$2" name="$3" dir="$4"; shift 4
  local out="$dir/$name"
  if [[ ! -x "$out" ]]; then
    mkdir -p "$dir"
    # One build per binary when hack/test.sh's background build and a suite ask at once.
    (
      flock 9
      if [[ -x "$out" ]]; then exit 0; fi
      echo "building $name ($(basename "$dir"), first run only; cached afterwards)" >&2
      local start=$SECONDS
      (cd "$root/hack/go/$wrapper" && go build -ldflags "-s -w $*" -o "$out.tmp.$$" "$pkg")
      mv "$out.tmp.$$" "$out"
      echo "built $name in $((SECONDS - start))s" >&2
    ) 9>"$out.lock"
  fi
  echo "$name $out"
}

what="${1:-all}"
if [[ $what == kubernetes || $what == all ]]; then
  v="$(modver kubernetes k8s.io/kubernetes)"
  minor="${v#v1.}"; minor="${minor%%.*}"
  # Built from a module the binaries would report v0.0.0-master; the kubelet
  # sends its version to the apiserver (Node status), so stamp the real one.
  vflags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    vflags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  # kubectl too: tests drive logs/exec through the real client, not a host install.
  for cmd in kubelet kube-scheduler kube-proxy kubectl; do
    build kubernetes "k8s.io/kubernetes/cmd/$cmd" "$cmd" "$cache/bin/$cmd-$v" "$vflags"
  done
fi
if [[ $what == containerd || $what == all ]]; then
  v="$(modver containerd github.com/containerd/containerd/v2)"
  # One directory: containerd must find its own shim first on PATH.
  dir="$cache/bin/containerd-$v"
  vflags="-X github.com/containerd/containerd/v2/version.Version=$v"
  for cmd in containerd containerd-shim-runc-v2 ctr; do
    build containerd "github.com/containerd/containerd/v2/cmd/$cmd" "$cmd" "$dir" "$vflags"
  done
fi
if [[ $what == helm || $what == all ]]; then
  v="$(modver helm helm.sh/helm/v3)"
  build helm helm.sh/helm/v3/cmd/helm helm "$cache/bin/helm-$v" "-X helm.sh/helm/v3/internal/version.version=$v"
fi
if [[ $what == coredns || $what == all ]]; then
  v="$(modver coredns github.com/coredns/coredns)"
  build coredns github.com/coredns/coredns coredns "$cache/bin/coredns-$v"
fi
if [[ $what == pause || $what == all ]]; then
  v="$(modver kubernetes k8s.io/kubernetes)"
  out="$cache/bin/pause-$v/pause"
  mkdir -p "$(dirname "$out")"
  exec 8>"$out.lock"
  flock 8
  if [[ ! -x "$out" ]]; then
    src="$(cd "$root/hack/go/kubernetes" && go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')/build/pause/linux/pause.c"
    # Static: the pause image is FROM scratch, nothing else in it.
    gcc -Os -Wall -Werror -static -DVERSION="$v" -o "$out.tmp.$$" "$src"
    strip "$out.tmp.$$"
    mv "$out.tmp.$$" "$out"
  fi
  echo "pause $out"
fi
