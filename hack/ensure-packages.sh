#!/usr/bin/env bash
# Installs the Debian packages the real test components need, when missing.
# Idempotent; a machine that has them all makes no apt call at all.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[[ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]] || need+=(openjdk-17-jre-headless)
command -v curl >/dev/null || need+=(curl)
# The node (kubelet + containerd, hack/local/node.ts): OCI runtime, CNI plugins,
# iptables for kube-proxy and kubelet, conntrack for kube-proxy's UDP cleanup.
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
# Gateway tests: network namespaces for backends (hack/local/netns-backend.ts)
# and a throwaway CA for the HTTPS listener (test/support/tls.ts).
command -v ip >/dev/null || need+=(iproute2)
command -v openssl >/dev/null || need+=(openssl)
# Media scanning (hack/local/clamd.ts): clamd with a local test database.
command -v clamd >/dev/null || need+=(clamav-daemon)
if ((${#need[@]})); then
  echo "installing Debian packages: ${need[*]}" >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The Debian service units start their own daemons on install; the tests run
# private instances on free ports, so stop the system-wide ones.
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then systemctl stop redis-server || true; fi
for unit in clamav-daemon clamav-freshclam; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$unit" 2>/dev/null; then systemctl stop "$unit" || true; fi
done
