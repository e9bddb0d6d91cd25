#!/usr/bin/env bash
# Downloads the pinned Keycloak server distribution from Maven Central and
# unpacks it into a per-version cache directory. Prints the distribution
# home. Safe to run concurrently: unpacking happens in a private temp dir and
# is moved into place atomically.
set -euo pipefail

KEYCLOAK_VERSION="${KEYCLOAK_VERSION:-26.5.6}"
CACHE_ROOT="${FAMILYHUB_CACHE:-$HOME/.cache/familyhub}"
DEST="$CACHE_ROOT/keycloak-$KEYCLOAK_VERSION"
REPO="${MAVEN_CENTRAL_URL:-https://repo.maven.apache.org/maven2}"
ARTIFACT="org/keycloak/keycloak-quarkus-dist/$KEYCLOAK_VERSION/keycloak-quarkus-dist-$KEYCLOAK_VERSION.tar.gz"

if [[ -x "$DEST/bin/kc.sh" ]]; then
  echo "$DEST"
  exit 0
fi

mkdir -p "$CACHE_ROOT"
tmp="$(mktemp -d "$CACHE_ROOT/.keycloak-$KEYCLOAK_VERSION.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

curl -fsSL --retry 3 -o "$tmp/dist.tar.gz" "$REPO/$ARTIFACT"
curl -fsSL --retry 3 -o "$tmp/dist.tar.gz.sha1" "$REPO/$ARTIFACT.sha1"
expected="$(cut -c1-40 "$tmp/dist.tar.gz.sha1")"
actual="$(sha1sum "$tmp/dist.tar.gz" | cut -c1-40)"
if [[ "$expected" != "$actual" ]]; then
  echo "keycloak $KEYCLOAK_VERSION: checksum mismatch (expected $expected, got $actual)" >&2
  exit 1
fi

tar -xzf "$tmp/dist.tar.gz" -C "$tmp"
rm -f "$tmp/dist.tar.gz"
# Another process may have won the race; keep whichever landed first.
if [[ ! -d "$DEST" ]]; then
  mv "$tmp/keycloak-$KEYCLOAK_VERSION" "$DEST" 2>/dev/null || true
fi
echo "$DEST"
