#!/bin/busybox sh
# kfw lab guest init: PID 1 of the initramfs the harness builds (initramfs.go).
#
# It mounts the host root read-only (9p tag "hostroot") and the run directory
# read-write (9p tag "kfwlab") at /run/kfwlab inside it, prepares a fresh
# /proc, /sys, /dev, /tmp and /run, runs /run/kfwlab/payload.sh in a chroot,
# then stores the exit status, the taint flags, the kmemleak report (kernels
# with kmemleak) and dmesg in the run directory and powers off. Settings come
# from /run/kfwlab/lab.conf (shell variables written by the host):
#   LAB_NET=1        load virtio_net and configure eth0 for qemu's user network
#   LAB_MODULES=DIR  host path shown as /lib/modules (kernels not under /lib)
#   LAB_HOSTNAME=N   the guest's host name
# Lines starting with "kfwlab:" on the console mark the stages for the host.

/bin/busybox --install -s /bin
export PATH=/bin

root=/newroot
out=$root/run/kfwlab

say() { echo "kfwlab: $*"; }

# fatal reports a setup failure and powers off; the host sees no exit status
# and reports the console, which ends with this line.
fatal() {
	say "FATAL: $*"
	reboot -f
	sleep 10
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

load_modules() {
	while read -r m; do
		insmod "/modules/$m" || fatal "insmod $m failed"
	done <"/modules/$1"
}

load_modules boot.order
p9="trans=virtio,version=9p2000.L,msize=262144"
mount -t 9p -o "$p9,ro,cache=loose" hostroot $root || fatal "cannot mount the host root (9p tag hostroot)"
mount -t tmpfs -o mode=0755 run $root/run || fatal "cannot mount /run"
mkdir -p $out
mount -t 9p -o "$p9" kfwlab $out || fatal "cannot mount the run directory (9p tag kfwlab)"
[ -r $out/lab.conf ] || fatal "no lab.conf in the run directory"
. $out/lab.conf

mount -t proc proc $root/proc || fatal "cannot mount /proc"
mount -t sysfs sysfs $root/sys || fatal "cannot mount /sys"
mount -t devtmpfs devtmpfs $root/dev || fatal "cannot mount /dev"
mkdir -p $root/dev/pts $root/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $root/dev/pts
mount -t tmpfs -o mode=1777 shm $root/dev/shm
mount -t tmpfs -o mode=1777 tmp $root/tmp || fatal "cannot mount /tmp"
mount -t debugfs debugfs $root/sys/kernel/debug 2>/dev/null
mount -t cgroup2 cgroup2 $root/sys/fs/cgroup 2>/dev/null
if [ -n "$LAB_MODULES" ]; then
	mount --bind "$root$LAB_MODULES" $root/lib/modules || fatal "cannot show $LAB_MODULES as /lib/modules"
fi

# The kernel runs its module loader (request_module: autoloading of veth,
# nf_tables, genetlink families...) in PID 1's root, the initramfs: send it
# to the host root's modprobe.
printf '#!/bin/sh\nexec chroot %s /sbin/modprobe "$@"\n' $root >/bin/modprobe-in-root
chmod 755 /bin/modprobe-in-root
echo /bin/modprobe-in-root >/proc/sys/kernel/modprobe

hostname "${LAB_HOSTNAME:-kfwlab}"
ip link set lo up
if [ "$LAB_NET" = 1 ]; then
	load_modules net.order
	ip link set eth0 up &&
		ip addr add 10.0.2.15/24 dev eth0 &&
		ip route add default via 10.0.2.2 ||
		fatal "cannot configure eth0"
fi

# Leaks from boot are not the payload's: report only what leaks after this.
leaks=$root/sys/kernel/debug/kmemleak
if [ -e $leaks ]; then
	echo scan >$leaks && echo clear >$leaks || fatal "kmemleak does not work"
	say "kmemleak cleared, uptime $(cut -d' ' -f1 /proc/uptime) s"
fi

say "payload start, uptime $(cut -d' ' -f1 /proc/uptime) s"
chroot $root /bin/sh /run/kfwlab/payload.sh </dev/null
rc=$?
echo $rc >$out/exit-status
say "payload exit status $rc"

cat /proc/sys/kernel/tainted >$out/tainted
say "collecting logs, uptime $(cut -d' ' -f1 /proc/uptime) s"
if [ -e $leaks ]; then
	# kmemleak reports objects unreferenced in two scans and older than 5 s.
	if echo scan >$leaks && sleep 6 && echo scan >$leaks; then
		cat $leaks >$out/kmemleak
	else
		echo "kmemleak scan failed (did kmemleak disable itself? see dmesg)" >$out/kmemleak
	fi
fi
dmesg >$out/dmesg
say "done, uptime $(cut -d' ' -f1 /proc/uptime) s"
sync
reboot -f
sleep 10
