#!/bin/bash
# The payload of make run's lab VM, started by kfwrun through the lab
# harness (lab/README.md): it loads kfw.ko, builds a client/router/server
# topology, installs the rules of cmd/kfwrun/rules, starts traffic
# (kfwtraffic), kfw_exporter and the agent of "kfwrun exec", and waits. The
# VM runs until the host stops it; if one of those programs dies, the
# script says which and exits, which ends the VM.
#
# Set by kfwrun: KFW_RUN_BIN (kfw_exporter, kfwctl, kfwtraffic, kfwrun),
# KFW_RUN_EXPORTER_PORT, KFW_RUN_AGENT_PORT, KFW_RUN_LOGS (the run
# directory's host path, for messages). Set by the lab: KFW_KO, KFW_REPO.
# Logs go to the run directory, /run/kfwlab here; it also holds the agent's
# token.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=/run/kfwlab
export PATH="$KFW_RUN_BIN:$PATH"

say() { echo "$*"; }

say "loading kfw.ko"
insmod "$KFW_KO"

say "creating the topology: kfwc (client) -- kfwr (router) -- kfws (server)"
for ns in kfwc kfwr kfws; do
	ip netns add "$ns"
	# Before the links exist, so that every IPv6 address skips DAD.
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
done
ip netns exec kfwr sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
# The VM's own eth0 (qemu's network) is in the initial namespace, where the
# kernel creates a veth before moving it: create under other names, rename
# once moved.
ip link add kfwc-eth0 netns kfwc type veth peer name eth-c netns kfwr
ip link add kfws-eth0 netns kfws type veth peer name eth-s netns kfwr
ip -n kfwc -batch - <<'IP'
link set kfwc-eth0 name eth0
link set lo up
address add 10.10.1.2/24 dev eth0
address add fd00:1::2/64 dev eth0 nodad
link set eth0 up
route add 0.0.0.0/0 via 10.10.1.1
route add ::/0 via fd00:1::1
IP
ip -n kfwr -batch - <<'IP'
link set lo up
address add 10.10.1.1/24 dev eth-c
address add fd00:1::1/64 dev eth-c nodad
link set eth-c up
address add 10.10.2.1/24 dev eth-s
address add fd00:2::1/64 dev eth-s nodad
link set eth-s up
IP
ip -n kfws -batch - <<'IP'
link set kfws-eth0 name eth0
link set lo up
address add 10.10.2.2/24 dev eth0
address add fd00:2::2/64 dev eth0 nodad
link set eth0 up
route add 0.0.0.0/0 via 10.10.2.1
route add ::/0 via fd00:2::1
IP

say "installing the rules of cmd/kfwrun/rules"
# One write, one transaction: the file is far below the 4096-byte limit.
cat "$here/rules" >/proc/kfw/rules

declare -A daemons # pid -> name; each logs to $out/<name>.log
start() {
	local name=$1
	shift
	"$@" >"$out/$name.log" 2>&1 &
	daemons[$!]=$name
}

say "starting traffic: about 200 packets/s through the router"
start sink kfwtraffic sink --netns kfws --udp :5001 --udp :6001 --udp :7001 --tcp :5002 --tcp :6002
start traffic-accepted kfwtraffic send --netns kfwc --rate 40 --udp 10.10.2.2:5001 --udp '[fd00:2::2]:5001'
start traffic-logged kfwtraffic send --netns kfwc --rate 20 --tcp 10.10.2.2:5002 --tcp '[fd00:2::2]:5002'
start traffic-dropped kfwtraffic send --netns kfwc --rate 20 --udp 10.10.2.2:6001 --tcp '[fd00:2::2]:6002'
start traffic-policy kfwtraffic send --netns kfwc --rate 5 --udp 10.10.2.2:7001 --udp '[fd00:2::2]:7001'

say "starting kfw_exporter on :$KFW_RUN_EXPORTER_PORT and the kfwrun agent on :$KFW_RUN_AGENT_PORT"
start exporter kfw_exporter --web.listen-address=":$KFW_RUN_EXPORTER_PORT"
start agent kfwrun agent --listen ":$KFW_RUN_AGENT_PORT" --token-file "$out/token" --dir "$KFW_REPO"
say "running; logs in ${KFW_RUN_LOGS:-$out}"

set +e
wait -n
status=$?
for pid in "${!daemons[@]}"; do
	if ! kill -0 "$pid" 2>/dev/null; then
		name=${daemons[$pid]}
		say "FAILED: $name exited with status $status; the end of ${KFW_RUN_LOGS:-$out}/$name.log:"
		tail -n 20 "$out/$name.log"
	fi
done
exit 1
