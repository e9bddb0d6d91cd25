#!/usr/bin/env bash
# Builds versitygw (S3 server for the media S3-store tests) from its pinned Go
# module, cached under $FAMILYHUB_CACHE/bin/versitygw-<version>/. Prints the
# binary's path; a second run is a no-op.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${FAMILYHUB_CACHE:-$HOME/.cache/familyhub}"
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -trimpath" CGO_ENABLED=0 GOMAXPROCS="${GOMAXPROCS:-2}"
ver="$(awk '$1=="require" && $2=="github.com/versity/versitygw" {print $3}' "$here/go.mod")"
out="$cache/bin/versitygw-$ver/versitygw"
if [[ -x "$out" ]]; then echo "$out"; exit 0; fi
mkdir -p "$(dirname "$out")"
echo "building versitygw $ver (first run only; cached afterwards)" >&2
start=$SECONDS
(cd "$here" && go build -ldflags "-s -w" -o "$out.tmp.$$" github.com/versity/versitygw/cmd/versitygw)
mv "$out.tmp.$$" "$out"
echo "built versitygw $ver in $((SECONDS - start))s" >&2
echo "$out"
