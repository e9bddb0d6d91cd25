#!/usr/bin/env bash
# luahealth: Argo CD health.lua runner on gopher-lua at Argo CD's pinned
# version (this folder's main.go), cached as luahealth-<gopher-lua version>-<source digest>.
exec bash "$(dirname "$0")/../build-cached.sh" luahealth github.com/yuin/gopher-lua@v1.1.2 .
