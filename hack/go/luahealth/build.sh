#!/usr/bin/env bash
# Builds luahealth (Argo CD health.lua runner on gopher-lua at Argo CD's
# pinned version), cached under $FAMILYHUB_CACHE/bin/luahealth-<version>/
# where the version names the gopher-lua release and a digest of this
# folder's sources. Prints the binary's path; a second run is a no-op.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${FAMILYHUB_CACHE:-$HOME/.cache/familyhub}"
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -trimpath" CGO_ENABLED=0 GOMAXPROCS="${GOMAXPROCS:-2}"
lua="$(awk '$1=="github.com/yuin/gopher-lua" {print $2}' "$here/go.mod")"
src="$(cat "$here/go.mod" "$here/go.sum" "$here"/*.go | sha256sum | cut -c1-12)"
ver="$lua-$src"
out="$cache/bin/luahealth-$ver/luahealth"
if [[ -x "$out" ]]; then echo "$out"; exit 0; fi
mkdir -p "$(dirname "$out")"
echo "building luahealth $ver (first run only; cached afterwards)" >&2
(cd "$here" && go build -ldflags "-s -w" -o "$out.tmp.$$" .)
mv "$out.tmp.$$" "$out"
echo "$out"
