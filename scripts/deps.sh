#!/bin/sh
# Install the Debian 12 packages kfw's build, lab and tests need; only what is
# missing, so a second run costs a dpkg query. Needs root (or sudo) when
# something is missing.
set -eu

PKGS="
build-essential bc bison flex libelf-dev libssl-dev cpio kmod rsync perl xz-utils
sparse
linux-image-amd64 linux-headers-amd64
linux-image-rt-amd64 linux-headers-rt-amd64
linux-source-6.1
qemu-system-x86 busybox-static
iproute2 nftables iptables iputils-ping procps python3 curl ca-certificates
prometheus prometheus-node-exporter
dkms
"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "deps: all packages present"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

echo "deps: installing:$missing"
$SUDO apt-get update
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $missing
