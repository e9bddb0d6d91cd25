#!/usr/bin/env bash
# Builds one pinned Go tool from its wrapper module hack/go/<name>/ and caches
# it under $FAMILYHUB_CACHE/bin/<name>-<version>/<name>. Prints the binary's
# path; a second run is a no-op.
#
#   build-cached.sh <name> <module@version> <package> [tags]
#
# <module@version> is the dependency that names the release; it must be what
# the wrapper's go.mod requires (a bump changes both, or this refuses).
# <package> is the main package: a path in that dependency, or "." for a
# harness whose main.go lives in the wrapper, in which case a digest of the
# wrapper's sources joins the version (a changed harness is rebuilt).
# [tags] are Go build tags (comma-separated); they join the version too.
set -euo pipefail
name="${1:?name}"; modver="${2:?module@version}"; pkg="${3:?package}"; tags="${4:-}"
here="$(cd "$(dirname "$0")/$name" && pwd)"
cache="${FAMILYHUB_CACHE:-$HOME/.cache/familyhub}"
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -trimpath" CGO_ENABLED=0 GOMAXPROCS="${GOMAXPROCS:-2}"
module="${modver%@*}"; version="${modver##*@}"
pinned="$(awk -v m="$module" '($1=="require" && $2==m) {print $3} ($1==m) {print $2}' "$here/go.mod" | head -1)"
if [[ "$pinned" != "$version" ]]; then
  echo "build-cached: $name asks for $modver but $here/go.mod requires ${pinned:-no} $module" >&2
  exit 1
fi
ver="$version"
if [[ "$pkg" == "." ]]; then ver="$ver-$(cat "$here/go.mod" "$here/go.sum" "$here"/*.go | sha256sum | cut -c1-12)"; fi
if [[ -n "$tags" ]]; then ver="$ver-${tags//,/+}"; fi
out="$cache/bin/$name-$ver/$name"
if [[ -x "$out" ]]; then echo "$out"; exit 0; fi
mkdir -p "$(dirname "$out")"
# hack/test.sh builds in the background while the first suites run: a suite
# that asks for the tool meanwhile waits for that build instead of a second one.
exec 9>"$out.lock"
flock 9
if [[ -x "$out" ]]; then echo "$out"; exit 0; fi
echo "building $name $ver (first run only; cached afterwards)" >&2
start=$SECONDS
(cd "$here" && go build ${tags:+-tags "$tags"} -ldflags "-s -w" -o "$out.tmp.$$" "$pkg")
mv "$out.tmp.$$" "$out"
echo "built $name $ver in $((SECONDS - start))s" >&2
echo "$out"
