#!/bin/sh
# Reproduces a guest wedge of qemu TCG (see README.md). Guest payload: UDP floods on both CPUs (loopback in a netns + forwarded
# through a veth client/router/server topology), while the netfilter
# IPv4/IPv6 hooks come and go.
#   MODE=kfw      insmod kfw, write 4 rules, rmmod kfw, repeatedly
#   MODE=kfwkeep  same, but an nft inet table with input/output/forward base
#                 chains exists in every netns first (static keys stay on)
#   MODE=nft      no kfw: add/delete nft base chains (input/output/forward)
#                 in every netns, repeatedly (flips the static keys)
# DURATION: seconds to loop (default 600).
set -u
MODE=${MODE:-kfw}
DURATION=${DURATION:-600}
BIN=${KFW_BIN:?run it with kfwlab, which sets KFW_BIN and KFW_KO}
cd "$(dirname "$0")" || exit 1
log() { echo "$(date +%T) $*"; echo "lockup: $*" > /dev/kmsg; }

ip netns add lo1; ip -n lo1 link set lo up
for n in c r s; do ip netns add $n; ip -n $n link set lo up; done
ip link add eth0 netns c type veth peer name eth-c netns r
ip link add eth0 netns s type veth peer name eth-s netns r
ip -n c addr add 10.10.1.2/24 dev eth0; ip -n c link set eth0 up
ip -n s addr add 10.10.2.2/24 dev eth0; ip -n s link set eth0 up
ip -n r addr add 10.10.1.1/24 dev eth-c; ip -n r link set eth-c up
ip -n r addr add 10.10.2.1/24 dev eth-s; ip -n r link set eth-s up
ip -n c route add default via 10.10.1.1
ip -n s route add default via 10.10.2.1
ip netns exec r sysctl -qw net.ipv4.ip_forward=1

# Sinks, then floods pinned to CPU 0 and CPU 1 (two flows each place).
PIDS=
$BIN/kfwtraffic sink --netns lo1 --udp :5000 >/dev/null 2>&1 & PIDS="$PIDS $!"
$BIN/kfwtraffic sink --netns s --udp :5000 >/dev/null 2>&1 & PIDS="$PIDS $!"
sleep 1
for cpu in 0 1; do
  taskset -c $cpu $BIN/kfwtraffic send --netns lo1 --rate 0 --size 64 \
    --udp 127.0.0.1:5000 --udp 127.0.0.1:53 --udp '[::1]:5000' >/dev/null 2>&1 & PIDS="$PIDS $!"
  taskset -c $cpu $BIN/kfwtraffic send --netns c --rate 0 --size 64 \
    --udp 10.10.2.2:5000 --udp 10.10.2.2:53 >/dev/null 2>&1 & PIDS="$PIDS $!"
done
sleep 2

nft_keep() {  # $1 = netns or "" for init
  x=${1:+ip netns exec $1}
  $x nft add table inet keep
  $x nft add chain inet keep in  '{ type filter hook input priority 0; }'
  $x nft add chain inet keep out '{ type filter hook output priority 0; }'
  $x nft add chain inet keep fw '{ type filter hook forward priority 0; }'
}
if [ "$MODE" = kfwkeep ]; then
  modprobe nf_tables
  for n in "" lo1 c r s; do nft_keep "$n"; done
  log "nft chains installed: $(for n in "" lo1 c r s; do ${n:+ip netns exec $n} nft list ruleset | grep -c hook; done | tr '\n' ' ')"
fi
if [ "$MODE" = nft ]; then
  modprobe nf_tables
  nft -f keep.nft
  log "nft chains installed (init netns only): $(nft list ruleset | grep -c hook)"
fi

end=$(( $(date +%s) + DURATION ))
i=0
while [ "$(date +%s)" -lt "$end" ]; do
  i=$((i+1))
  case $MODE in
  kfw|kfwkeep)
    echo "lockup: cycle $i insmod" > /dev/kmsg
    insmod "$KFW_KO" || { log "insmod failed at $i"; exit 1; }
    for r in "add id=1 action=accept proto=udp hooks=forward" \
             "add id=2 action=accept proto=udp hooks=output log=1 rate=10" \
             "add id=3 action=drop proto=udp hooks=input dport=1-1023" \
             "add id=4 action=accept proto=udp"; do
      echo "$r" > /proc/kfw/rules || log "rule write failed: $r"
    done
    sleep 0.$((i % 3))
    echo "lockup: cycle $i rmmod" > /dev/kmsg
    rmmod kfw || { log "rmmod failed at $i"; exit 1; }
    ;;
  nft)
    # The keys are global: one netns holding the only base chains is
    # enough to flip nf_hooks_needed[IPV4/IPV6][IN/OUT/FWD] on and off.
    echo "lockup: cycle $i nft delete" > /dev/kmsg
    nft delete table inet keep || log "nft delete failed at $i"
    sleep 0.$((i % 3))
    echo "lockup: cycle $i nft add" > /dev/kmsg
    nft -f keep.nft || log "nft add failed at $i"
    ;;
  esac
  [ $((i % 10)) = 0 ] && log "$MODE cycle $i, lo1 udp: $(ip netns exec lo1 grep '^Udp:' /proc/net/snmp | tail -1 | cut -d' ' -f2-5)"
done
log "$MODE done: $i cycles in ${DURATION}s"
echo "lo1 Udp: $(ip netns exec lo1 grep '^Udp:' /proc/net/snmp | tail -1)"
echo "s   Udp: $(ip netns exec s grep '^Udp:' /proc/net/snmp | tail -1)"
kill -9 $PIDS 2>/dev/null
exit 0
