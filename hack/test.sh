#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what a fresh machine lacks,
# builds the pinned control plane and OpenBao (cached by version), then runs
# the unit and e2e suites against real components.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/ensure-packages.sh
[[ -d node_modules/.bin ]] && [[ node_modules/.package-lock.json -nt package-lock.json ]] || npm ci --no-audit --no-fund
bash hack/controlplane/build.sh all >/dev/null
# S3 server for the media S3-store tests (~80 s cold, cached).
bash hack/go/versitygw/build.sh >/dev/null
# Argo CD's Lua VM and kstatus for the health-check tests (~2 min cold, cached).
bash hack/go/luahealth/build.sh >/dev/null && bash hack/go/kstatus/build.sh >/dev/null
bash hack/node/build.sh all >/dev/null
[[ -x hack/keycloak/fetch.sh ]] && bash hack/keycloak/fetch.sh >/dev/null
npx tsc -p tsconfig.json --noEmit
report="$(mktemp)"
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
# One plain closing line that any CI log reader understands.
node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`)' "$report" 2>/dev/null || true
rm -f "$report"
exit "$status"
