#!/usr/bin/env bash
# kstatus: status.Compute of sigs.k8s.io/cli-utils at its pinned version (this
# folder's main.go), cached as kstatus-<cli-utils version>-<source digest>.
exec bash "$(dirname "$0")/../build-cached.sh" kstatus sigs.k8s.io/cli-utils@v0.37.2 .
