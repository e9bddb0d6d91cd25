#!/usr/bin/env bash
# promtool: Prometheus' rule checker and rule unit-test runner, for the chart's
# alerts (test/unit/chart-alerts.test.ts). remove_all_sd leaves out the
# service-discovery SDKs promtool never needs for rules (a smaller, faster build).
exec bash "$(dirname "$0")/../build-cached.sh" promtool github.com/prometheus/prometheus@v0.316.0 github.com/prometheus/prometheus/cmd/promtool remove_all_sd
