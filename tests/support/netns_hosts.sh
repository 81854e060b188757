# shellcheck shell=bash
# Sourced by tests/netns_test.sh and bench/shaped_cluster.sh: hosts on one
# machine, each in its own network namespace with its own address, joined by
# veth pairs to a bridge. Needs root.
#
#   source tests/support/netns_hosts.sh
#   netns_probe                     # exits 77 (skipped) where it cannot work
#   netns_hosts PREFIX ID HOST=ADDRESS...
#   netns_teardown PREFIX ID HOST...
# Host h gets the namespace PREFIX h ID, its end of the veth pair inside it
# is PREFIX v h ID and the bridge's end PREFIX p h ID (on bridge PREFIX br
# ID), its address ADDRESS/24.

netns_probe() {
  [ "$(id -u)" = 0 ] || { echo "SKIP: network namespaces need root"; exit 77; }
  local probe="tprobe$$"
  ip netns add "$probe" 2>/dev/null || { echo "SKIP: cannot create network namespaces here"; exit 77; }
  # `ip netns exec` remounts /sys inside a new mount namespace, which a
  # chroot whose / is not a mount point does not allow.
  local out
  if ! out=$(ip netns exec "$probe" true 2>&1); then
    ip netns del "$probe"
    echo "SKIP: cannot run programs in a network namespace here ($out)"; exit 77
  fi
  ip netns del "$probe"
}

netns_hosts() {
  local prefix=$1 id=$2 pair h address ns
  shift 2
  ip link add "${prefix}br$id" type bridge
  ip link set "${prefix}br$id" up
  for pair in "$@"; do
    h=${pair%%=*} address=${pair#*=} ns="$prefix$h$id"
    ip netns add "$ns"
    ip link add "${prefix}v$h$id" type veth peer name "${prefix}p$h$id"
    ip link set "${prefix}v$h$id" netns "$ns"
    ip link set "${prefix}p$h$id" master "${prefix}br$id" up
    ip -n "$ns" addr add "$address/24" dev "${prefix}v$h$id"
    ip -n "$ns" link set "${prefix}v$h$id" up
    ip -n "$ns" link set lo up
  done
}

netns_teardown() {
  local prefix=$1 id=$2 h
  shift 2
  for h in "$@"; do ip netns del "$prefix$h$id" 2>/dev/null || true; done
  ip link del "${prefix}br$id" 2>/dev/null || true
}
