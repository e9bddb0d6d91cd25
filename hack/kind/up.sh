#!/usr/bin/env bash
# For users with Docker: a kind cluster with the operator image loaded, the
# Helm chart deployed (it brings the CRDs and RBAC). (No Docker engine on
# the project's CI machines, so this path is documented, not tested there.)
set -euo pipefail
cd "$(dirname "$0")/../.."
CLUSTER="${KIND_CLUSTER:-familyhub}"
IMAGE="${IMAGE:-familyhub-operator:dev}"
command -v kind >/dev/null || { echo "kind is required: https://kind.sigs.k8s.io" >&2; exit 1; }
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"
helm upgrade --install familyhub-operator charts/familyhub-operator \
  --namespace familyhub-system --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE#*:}" --set image.pullPolicy=Never
kubectl -n familyhub-system rollout status deploy/familyhub-operator --timeout=120s
echo "operator running; apply config/samples to try it"
