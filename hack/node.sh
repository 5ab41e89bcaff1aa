#!/usr/bin/env bash
# A single-node Kubernetes v1.20.2 cluster for the tests that claim pod
# behaviour: etcd, kube-apiserver, kube-controller-manager (job controller,
# garbage collector, service-account tokens…), kube-scheduler, kubelet and
# kube-proxy (iptables), with containerd + runc + CNI plugins from Debian, the
# pause and operator images built here (hack/node-image.sh) and a pod network on
# a bridge of its own. It is a second cluster beside the API-server-only one of
# hack/test-env.sh: the tests there play the job controller themselves, which a
# real job controller would race.
#
#   hack/node.sh bridge            create the bridge (idempotent); print its address
#   hack/node.sh start DIR BINARY  start the cluster in DIR (BINARY goes into the
#                                  operator image); write DIR/env (sourceable)
#   hack/node.sh image DIR BINARY  rebuild the operator image with BINARY and import it
#                                  into the running node (after a code change)
#   hack/node.sh stop DIR          stop it, undo its host changes, remove DIR
#
# Needs root (bridge, iptables, mounts, cgroups). The host's traffic stays on
# 127.0.0.0/8, the pod range and the service range: pods reach the harness's
# services on the bridge address, nothing is forwarded (ip_forward untouched).
# The kubelet starts with AWS_EC2_METADATA_DISABLED=true: without it its ECR
# credential provider probes the cloud metadata address.
set -euo pipefail
HACK=$(cd "$(dirname "$0")" && pwd)
. "$HACK/lib.sh"
BRIDGE=af-cni0
NODE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.0.0.0/24
NODE=af-node
# Sysctls the kubelet and kube-proxy change; saved at start, restored at stop.
SYSCTLS="vm.overcommit_memory kernel.panic kernel.panic_on_oops net.ipv4.conf.all.route_localnet
net.ipv4.conf.$BRIDGE.route_localnet net.bridge.bridge-nf-call-iptables"

need_root() {
  [ "$(id -u)" = 0 ] || { log "the node needs root (bridge, iptables, mounts, cgroups)"; exit 1; }
}

# One node per machine: the bridge, its address and kube-proxy's rules are
# global. OWNER names the directory of the node that has them.
OWNER=/run/artifortress-node

# Every process of a node names its directory on its command line. None alive
# means the machine lost them (a restart, a killed session) while /run and the
# directory stayed: undo what is left. Run before anything listens on the
# bridge, since the clean-up removes it.
clear_stale_owner() {
  [ -f "$OWNER" ] || return 0
  local other
  other=$(cat "$OWNER")
  if [ -d "$other" ] && pgrep -f -- "$other/" >/dev/null; then return 0; fi
  log "the node of $other is not running (left by an earlier run); cleaning up after it"
  (stop "$other")
  rm -f "$OWNER"
}

bridge() {
  need_root
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$NODE_IP/24" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  echo "$NODE_IP"
}

background() { # log-file command... (its pid joins DIR/pids)
  local logfile=$1; shift
  setsid "$@" >"$logfile" 2>&1 &
  echo $! >> "$D/pids"
}

wait_for() { # what seconds command...
  local what=$1 seconds=$2; shift 2
  for _ in $(seq $((seconds * 2))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  log "$what did not come up; see $D/*.log"
  return 1
}

kubeconfig() { # file token
  cat > "$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: node
  cluster:
    server: https://$NODE_IP:$API_PORT
    certificate-authority: $D/certs/apiserver.crt
users:
- name: user
  user:
    token: $2
contexts:
- name: node
  context: {cluster: node, user: user, namespace: default}
current-context: node
KC
}

import_images() {
  local ctr="ctr --address $D/containerd.sock -n k8s.io"
  IMAGE=$("$HACK/node-image.sh" "$D/images" "$BINARY")
  $ctr images import "$D/images/pause.tar" >/dev/null
  $ctr images import "$D/images/operator.tar" >/dev/null
  rm -rf "$D/images"
}

start() {
  D=$1 BINARY=$2
  need_root
  clear_stale_owner
  mkdir -p "$D"/certs
  chmod 755 "$D"
  : > "$D/pids"
  for tool in containerd runc conntrack iptables; do command -v $tool >/dev/null || MISSING="${MISSING:-} $tool"; done
  [ -d /usr/lib/cni ] || MISSING="${MISSING:-} containernetworking-plugins"
  [ -z "${MISSING:-}" ] || apt_install $MISSING
  command -v etcd >/dev/null || apt_install etcd-server
  KUBE_BIN=$("$HACK/install-kubernetes.sh")
  if [ -f "$OWNER" ]; then
    log "a node is running from $(cat "$OWNER"); stop it first: hack/node.sh stop $(cat "$OWNER")"
    exit 1
  fi
  echo "$D" > "$OWNER"
  for s in $SYSCTLS; do v=$(sysctl -n "$s" 2>/dev/null) && echo "$s=$v"; done > "$D/sysctl.saved" || true
  # kube-proxy --cleanup leaves its canary and mark chains: removed at stop
  # unless the host had KUBE-* chains of its own before.
  iptables-save 2>/dev/null | grep -q '^:KUBE-' && touch "$D/host-has-kube-chains"
  # Network namespaces of other runtimes on this host are not ours to remove.
  ip netns list 2>/dev/null | awk '{print $1}' > "$D/netns.before" || true
  ls -d /sys/fs/cgroup/*/kubepods >/dev/null 2>&1 && touch "$D/host-has-kubepods"
  bridge >/dev/null

  local etcd_port peer_port token
  etcd_port=$(free_port); peer_port=$(free_port); API_PORT=$(free_port)
  background "$D/etcd.log" etcd --data-dir "$D/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" --initial-cluster "default=http://127.0.0.1:$peer_port"
  openssl genrsa -out "$D/sa.key" 2048 2>/dev/null
  openssl rsa -in "$D/sa.key" -pubout -out "$D/sa.pub" 2>/dev/null
  # The CA the controller-manager signs CSRs with (nothing here depends on it).
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=af-node-ca \
    -keyout "$D/ca.key" -out "$D/ca.crt" 2>/dev/null
  for who in admin controller_manager scheduler node proxy; do
    token=$(openssl rand -hex 16)
    eval "TOKEN_$who=$token"
  done
  cat > "$D/tokens.csv" <<CSV
$TOKEN_admin,admin,admin,system:masters
$TOKEN_controller_manager,system:kube-controller-manager,system:kube-controller-manager
$TOKEN_scheduler,system:kube-scheduler,system:kube-scheduler
$TOKEN_node,system:node:$NODE,system:node:$NODE,system:nodes
$TOKEN_proxy,system:kube-proxy,system:kube-proxy
CSV
  background "$D/apiserver.log" "$KUBE_BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port="$API_PORT" --cert-dir="$D/certs" \
    --service-account-key-file="$D/sa.pub" --service-account-signing-key-file="$D/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc --token-auth-file="$D/tokens.csv" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --service-cluster-ip-range="$SERVICE_CIDR" --allow-privileged=false --kubelet-preferred-address-types=InternalIP \
    --feature-gates=GenericEphemeralVolume=true
  for who in admin controller_manager scheduler node proxy; do
    eval "token=\$TOKEN_$who"
    kubeconfig "$D/$who.kubeconfig" "$token"
  done
  wait_for "the API server" 60 test -s "$D/certs/apiserver.crt"
  wait_for "the API server" 60 "$KUBE_BIN/kubectl" --kubeconfig "$D/admin.kubeconfig" get --raw /readyz

  background "$D/controller-manager.log" "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig="$D/controller_manager.kubeconfig" --controllers='*' --use-service-account-credentials=true \
    --service-account-private-key-file="$D/sa.key" --root-ca-file="$D/certs/apiserver.crt" \
    --cluster-signing-cert-file="$D/ca.crt" --cluster-signing-key-file="$D/ca.key" \
    --leader-elect=false --port=0 --secure-port="$(free_port)" --bind-address=127.0.0.1 \
    --feature-gates=GenericEphemeralVolume=true
  background "$D/scheduler.log" "$KUBE_BIN/kube-scheduler" --kubeconfig="$D/scheduler.kubeconfig" \
    --leader-elect=false --port=0 --secure-port="$(free_port)" --bind-address=127.0.0.1

  # containerd: its own root, state and socket under DIR. runc cannot lower
  # oom_score_adj here (no CAP_SYS_RESOURCE in the sandbox), hence restrict_oom_score_adj.
  mkdir -p "$D/cni/net.d"
  cat > "$D/containerd.toml" <<TOML
version = 2
root = "$D/containerd/root"
state = "$D/containerd/state"
[grpc]
  address = "$D/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "k8s.gcr.io/pause:3.2"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$D/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$D/cni/net.d"
TOML
  cat > "$D/cni/net.d/10-af.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "af-pods", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": false, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
            "routes": [{"dst": "$SERVICE_CIDR", "gw": "$NODE_IP"}], "dataDir": "$D/cni/ipam"}},
  {"type": "loopback"}]}
JSON
  background "$D/containerd.log" containerd --config "$D/containerd.toml"
  local ctr="ctr --address $D/containerd.sock -n k8s.io"
  wait_for containerd 30 $ctr version

  import_images

  local kubelet_port
  kubelet_port=$(free_port)
  AWS_EC2_METADATA_DISABLED=true background "$D/kubelet.log" "$KUBE_BIN/kubelet" \
    --kubeconfig="$D/node.kubeconfig" --hostname-override="$NODE" --node-ip="$NODE_IP" \
    --address="$NODE_IP" --port="$kubelet_port" --healthz-port=0 --read-only-port=0 \
    --container-runtime=remote --container-runtime-endpoint="unix://$D/containerd.sock" \
    --cgroup-driver=cgroupfs --fail-swap-on=false --root-dir="$D/kubelet" --cert-dir="$D/kubelet/pki" \
    --pod-infra-container-image=k8s.gcr.io/pause:3.2 --make-iptables-util-chains=false \
    --eviction-hard='memory.available<100Mi,nodefs.available<1%,imagefs.available<1%' \
    --image-gc-high-threshold=100 --image-gc-low-threshold=99 --volume-plugin-dir="$D/kubelet/plugins" \
    --feature-gates=GenericEphemeralVolume=true
  background "$D/kube-proxy.log" "$KUBE_BIN/kube-proxy" --kubeconfig="$D/proxy.kubeconfig" \
    --hostname-override="$NODE" --proxy-mode=iptables --cluster-cidr="$POD_CIDR" --oom-score-adj=0 \
    --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 \
    --metrics-bind-address="127.0.0.1:$(free_port)" --healthz-bind-address="127.0.0.1:$(free_port)"
  local kubectl="$KUBE_BIN/kubectl --kubeconfig $D/admin.kubeconfig"
  wait_for "node $NODE" 120 sh -c "$kubectl get node $NODE -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  # Pods need the namespace's default ServiceAccount, made by the controller-manager.
  wait_for "the default ServiceAccount" 60 $kubectl get serviceaccount default
  cat > "$D/env" <<ENV
export AF_TEST_NODE_KUBECONFIG='$D/admin.kubeconfig'
export AF_TEST_NODE_KUBECTL='$KUBE_BIN/kubectl'
export AF_TEST_NODE_IP='$NODE_IP'
export AF_TEST_NODE_IMAGE='$IMAGE'
export AF_TEST_NODE_DIR='$D'
ENV
  log "node $NODE ready (images: $IMAGE, k8s.gcr.io/pause:3.2)"
}

stop() {
  D=$1
  [ -d "$D" ] || return 0
  local kubeproxy
  kubeproxy=$(ls "$ARTIFORTRESS_CACHE"/kubernetes-*/kube-proxy 2>/dev/null | head -n1 || true)
  # Pods' processes outlive kubelet and containerd (the shims keep them): kill
  # the containers first, then every process this cluster started.
  if [ -S "$D/containerd.sock" ]; then
    local ctr="ctr --address $D/containerd.sock -n k8s.io"
    for task in $($ctr tasks ls -q 2>/dev/null); do $ctr tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true; done
  fi
  if [ -f "$D/pids" ]; then
    while read -r pid; do kill "$pid" 2>/dev/null || true; done < "$D/pids"
    sleep 1
    while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done < "$D/pids"
  fi
  pkill -9 -f "containerd-shim.*$D/containerd.sock" 2>/dev/null || true
  { grep -o " $D[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  for ns in $(ip netns list 2>/dev/null | awk '/^cni-/ {print $1}'); do
    grep -qx "$ns" "$D/netns.before" 2>/dev/null || ip netns delete "$ns" 2>/dev/null || true
  done
  [ -n "$kubeproxy" ] && "$kubeproxy" --cleanup >/dev/null 2>&1 || true
  if [ ! -e "$D/host-has-kube-chains" ]; then
    for ipt in iptables ip6tables; do
      command -v $ipt >/dev/null || continue
      for t in filter nat mangle; do
        chains=$($ipt -t $t -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}')
        for c in $chains; do $ipt -t $t -F "$c" 2>/dev/null || true; done
        for c in $chains; do $ipt -t $t -X "$c" 2>/dev/null || true; done
      done
    done
  fi
  ip link delete "$BRIDGE" 2>/dev/null || true
  [ -f "$D/sysctl.saved" ] && while IFS== read -r k v; do sysctl -qw "$k=$v" 2>/dev/null || true; done < "$D/sysctl.saved"
  if [ ! -e "$D/host-has-kubepods" ]; then
    for c in /sys/fs/cgroup/*/kubepods; do
      [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
  fi
  [ "$(cat "$OWNER" 2>/dev/null)" = "$D" ] && rm -f "$OWNER"
  rm -rf "$D"
}

case "${1:-}" in
  bridge) need_root; clear_stale_owner; bridge ;;
  start) start "${2:?state dir}" "${3:?operator binary}" ;;
  image) D=${2:?state dir} BINARY=${3:?operator binary}; import_images; echo "$IMAGE" ;;
  stop) stop "${2:?state dir}" ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
