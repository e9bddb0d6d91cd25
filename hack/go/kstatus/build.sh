#!/usr/bin/env bash
# Builds kstatus (status.Compute of sigs.k8s.io/cli-utils at its pinned
# version), cached under $FAMILYHUB_CACHE/bin/kstatus-<version>/ where the
# version names the cli-utils release and a digest of this folder's sources.
# Prints the binary's path; a second run is a no-op.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${FAMILYHUB_CACHE:-$HOME/.cache/familyhub}"
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -trimpath" CGO_ENABLED=0 GOMAXPROCS="${GOMAXPROCS:-2}"
cli="$(awk '$1=="sigs.k8s.io/cli-utils" {print $2}' "$here/go.mod")"
src="$(cat "$here/go.mod" "$here/go.sum" "$here"/*.go | sha256sum | cut -c1-12)"
ver="$cli-$src"
out="$cache/bin/kstatus-$ver/kstatus"
if [[ -x "$out" ]]; then echo "$out"; exit 0; fi
mkdir -p "$(dirname "$out")"
echo "building kstatus $ver (first run only; cached afterwards)" >&2
(cd "$here" && go build -ldflags "-s -w" -o "$out.tmp.$$" .)
mv "$out.tmp.$$" "$out"
echo "$out"
