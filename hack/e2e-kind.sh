#!/usr/bin/env bash
# End to end on a kind cluster (needs Docker and kind; our CI machines have
# neither, so tests/chart.rs keeps the manifests used here valid instead):
# build the image, load it into kind, install the chart, start PostgreSQL x2 and
# MinIO in the cluster, run a RecoveryDrill to Succeeded. On failure, logs go to
# target/e2e-kind/. KEEP_CLUSTER=1 leaves the cluster running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh
CLUSTER=artifortress
NS=artifortress
IMAGE=artifortress-operator:e2e
LOGS=target/e2e-kind
HELM="$(hack/install-chart-tools.sh)/helm"

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { log "$tool is required for the kind e2e run"; exit 2; }
done

collect_logs() {
  log "drill did not succeed; collecting logs into $LOGS"
  mkdir -p "$LOGS"
  kubectl -n "$NS" get all,artifortresses,backups,recoverydrills,jobs -o wide > "$LOGS/objects.txt" 2>&1 || true
  kubectl -n "$NS" get events --sort-by=.lastTimestamp > "$LOGS/events.txt" 2>&1 || true
  kubectl -n "$NS" get recoverydrills,backups,artifortresses -o yaml > "$LOGS/resources.yaml" 2>&1 || true
  kubectl -n "$NS" logs deployment/af-artifortress-operator --all-containers > "$LOGS/operator.log" 2>&1 || true
  for pod in $(kubectl -n "$NS" get pods -o name 2>/dev/null); do
    kubectl -n "$NS" logs "$pod" --all-containers > "$LOGS/$(basename "$pod").log" 2>&1 || true
  done
  kind export logs "$LOGS/kind" --name "$CLUSTER" >/dev/null 2>&1 || true
}

cleanup() {
  status=$?
  [ "$status" -ne 0 ] && collect_logs
  [ "${KEEP_CLUSTER:-}" = 1 ] || kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  exit "$status"
}
trap cleanup EXIT

log "creating kind cluster $CLUSTER"
kind get clusters 2>/dev/null | grep -qx "$CLUSTER" || kind create cluster --config kind-config.yaml --wait 120s
log "building $IMAGE"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

log "installing the chart"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
# The chart serves HTTPS from a kubernetes.io/tls Secret (cert-manager in a real
# cluster); here a self-signed one.
tls=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=af-artifortress-operator \
  -keyout "$tls/tls.key" -out "$tls/tls.crt" 2>/dev/null
kubectl -n "$NS" create secret tls af-artifortress-operator-tls --cert "$tls/tls.crt" --key "$tls/tls.key" \
  --dry-run=client -o yaml | kubectl apply -f -
"$HELM" upgrade --install af charts/artifortress-operator --namespace "$NS" \
  --set image.repository=artifortress-operator --set image.tag=e2e --set image.pullPolicy=Never \
  --wait --timeout 5m

log "starting PostgreSQL (source, target) and MinIO; migrating and seeding"
kubectl -n "$NS" apply -f deploy/e2e/services.yaml
kubectl -n "$NS" wait --for=condition=available deployment/postgres-source deployment/postgres-target deployment/minio --timeout 5m
kubectl -n "$NS" wait --for=condition=complete job/e2e-prepare --timeout 10m

log "running the recovery drill"
kubectl -n "$NS" apply -f deploy/e2e/drill.yaml
phase=
for _ in $(seq 180); do
  phase=$(kubectl -n "$NS" get recoverydrill e2e -o jsonpath='{.status.phase}')
  case "$phase" in Succeeded|Failed) break ;; esac
  sleep 5
done
kubectl -n "$NS" get recoverydrills
[ "$phase" = Succeeded ] || { log "drill phase: ${phase:-none after 15 minutes}"; exit 1; }
log "e2e passed: $(kubectl -n "$NS" get recoverydrill e2e -o jsonpath='{.status.rpo.summary}; {.status.rto.summary}')"
