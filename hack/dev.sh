#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, builds the
# pinned control plane and node (cached by version), and runs the platform
# locally (`--no-node`: control plane only, operator as a host process).
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/ensure-packages.sh
[[ -d node_modules/.bin ]] && [[ node_modules/.package-lock.json -nt package-lock.json ]] || npm ci --no-audit --no-fund
bash hack/controlplane/build.sh all >/dev/null
# The node's binaries too, unless the control plane alone was asked for.
[[ " $* " == *" --no-node "* ]] || bash hack/node/build.sh all >/dev/null
exec node --import tsx hack/dev.ts "$@"
