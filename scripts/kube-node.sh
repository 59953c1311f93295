# The real node of `scripts/kube-up --kubelet`, sourced by it (not run on its
# own). Uses kube-up's variables and functions: dir, bin, pki, root, host_ip,
# pod_subnet, bridge, bridge_mac, node_marker, the ports, launch, ready, kubectl, die, say.
# scripts/kube-down takes all of it away again.

real_node() {
  echo "$dir $owner" >"$node_marker"
  local sock="$dir/containerd/containerd.sock"

  # The images first: building the static runner may take a while.
  say "building the images (scripts/build-images)"
  python3 "$root/scripts/build-images" --out "$dir/images" >/dev/null

  # A bridge whose gateway is this machine's address for pods; the CNI bridge
  # plugin joins each pod to it (host-local addresses), no NAT, no other rule.
  # The bridge's MAC address is set once: a bridge without one takes the lowest
  # MAC of its ports and changes it whenever a pod's veth comes or goes, and a
  # pod that learnt the old one sends its packets (DNS included) to a port that
  # is no longer the gateway until its ARP entry expires. That was the cluster
  # DNS "silence" of the e2e tests: a main container got no answer for 8 s right
  # after its init container had one.
  mkdir -p "$dir/cni/net.d" "$dir/cni/ipam"
  ip link show "$bridge" >/dev/null 2>&1 || ip link add "$bridge" type bridge
  ip link set "$bridge" address "$bridge_mac"
  [ "$(cat "/sys/class/net/$bridge/address")" = "$bridge_mac" ] ||
    die "the bridge $bridge did not take the MAC address $bridge_mac"
  ip addr replace "$host_ip/24" dev "$bridge"
  ip link set "$bridge" up
  cat >"$dir/cni/net.d/10-kubemigrate.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "kubemigrate",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$pod_subnet", "gateway": "$host_ip"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$dir/cni/ipam"
      }
    }
  ]
}
EOF

  # containerd with a root, state and socket of its own; network namespaces and
  # runc's state under DIR too, so that kube-down finds everything there.
  # restrict_oom_score_adj: the kubelet asks for -998 for pod sandboxes, which
  # needs CAP_SYS_RESOURCE; where root lacks it (these VMs), runc fails with
  # "failed to update /proc/self/oom_score_adj". Restricted, containerd never
  # goes below its own score.
  mkdir -p "$dir/containerd"
  cat >"$dir/containerd/config.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:dev"
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
EOF
  cat >"$dir/run/containerd.sh" <<EOF
exec containerd --config "$dir/containerd/config.toml" --log-level warn
EOF
  launch containerd
  ready containerd
  local image
  for image in "$dir"/images/*.tar; do
    ctr --address "$sock" -n k8s.io images import "$image" >/dev/null
  done

  # CoreDNS on the bridge's gateway: the cluster's names from the API (Services,
  # with their EndpointSlices), nothing else.
  cat >"$dir/Corefile" <<EOF
cluster.local:53 {
    bind $host_ip
    kubernetes cluster.local {
        kubeconfig $dir/kubeconfig kubemigrate-test
        pods disabled
    }
    health 127.0.0.1:$p_dns_health
    ready 127.0.0.1:$p_dns_ready
    log
    errors
}
.:53 {
    bind $host_ip
    template ANY ANY {
        rcode NXDOMAIN
    }
}
EOF
  cat >"$dir/run/coredns.sh" <<EOF
exec "$bin/coredns" -conf "$dir/Corefile"
EOF
  launch coredns
  ready coredns

  # The kubelet: cgroup v1 (failCgroupV1: false), containerd's CRI, pods' DNS from
  # CoreDNS, everything it writes under DIR.
  mkdir -p "$dir/kubelet" "$dir/pod-logs"
  : >"$dir/kubelet/resolv.conf"
  cat >"$dir/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $host_ip
port: $p_kubelet
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $p_kubelet_health
tlsCertFile: $pki/kube-node.crt
tlsPrivateKeyFile: $pki/kube-node.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: unix://$sock
clusterDNS: [$host_ip]
clusterDomain: cluster.local
resolvConf: $dir/kubelet/resolv.conf
podLogsDir: $dir/pod-logs
failSwapOn: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
EOF
  cat >"$dir/run/kubelet.sh" <<EOF
exec "$bin/kubelet" --config="$dir/kubelet/config.yaml" --kubeconfig="$dir/kube-node.kubeconfig" \\
  --root-dir="$dir/kubelet" --cert-dir="$dir/kubelet/pki" \\
  --hostname-override=kube-node --node-ip=$host_ip --v=1
EOF
  launch kubelet
  ready kubelet
  # The kubelet is healthy before its Node is registered, and `kubectl wait`
  # fails at once on an object that does not exist yet: first the Node, then
  # its Ready condition.
  wait_for kubelet 120 "${kubectl[@]}" get node/kube-node
  "${kubectl[@]}" wait --for=condition=Ready node/kube-node --timeout=120s >/dev/null
}
