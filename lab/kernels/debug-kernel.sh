#!/bin/bash
# Build and cache kfw's debug kernel: Debian's linux-source-6.1 configured
# with x86_64 defconfig + kvm_guest.config + debug.config (KASAN, lockdep,
# kmemleak, UBSAN, ...). See README.md next to this script.
#
#   debug-kernel.sh build   build into the cache unless already there
#   debug-kernel.sh path    print the cache dir; exit 1 if it is not complete
#   debug-kernel.sh key     print the cache key
#   debug-kernel.sh clean   remove every cached debug kernel
#
# The cache dir is created by renaming a finished "<key>.tmp" dir, so it is
# either complete or absent.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fragment=$here/debug.config
source_pkg=linux-source-6.1
tarball=/usr/src/$source_pkg.tar.xz
cache_root=${KFW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kfw}/debug-kernel

# Build settings. All of them are part of the cache key; bump recipe_rev
# when the build steps below change what ends up in the cache.
recipe_rev=2
base_configs="x86_64_defconfig kvm_guest.config"
make_targets="bzImage modules"

die() {
	echo "debug-kernel: $*" >&2
	exit 1
}

note() {
	echo "==> debug-kernel: $*" >&2
}

# check_deps reports every missing build dependency at once, with the
# Debian package that provides it.
check_deps() {
	local missing="" cmd pkg
	for pair in gcc:gcc make:make bc:bc bison:bison flex:flex perl:perl \
		cpio:cpio xz:xz-utils tar:tar depmod:kmod flock:util-linux \
		sha256sum:coreutils dpkg-query:dpkg; do
		cmd=${pair%%:*}
		pkg=${pair#*:}
		command -v "$cmd" >/dev/null 2>&1 || missing="$missing $cmd($pkg)"
	done
	if command -v gcc >/dev/null 2>&1; then
		has_header gelf.h || missing="$missing gelf.h(libelf-dev)"
		has_header openssl/opensslv.h || missing="$missing openssl/opensslv.h(libssl-dev)"
	else
		missing="$missing gelf.h(libelf-dev) openssl/opensslv.h(libssl-dev)"
	fi
	[ -r "$tarball" ] || missing="$missing $tarball($source_pkg)"
	[ -z "$missing" ] ||
		die "missing build dependencies (command or file, then Debian package):$missing; scripts/deps.sh installs them"
}

has_header() {
	echo "#include <$1>" | gcc -E -x c - >/dev/null 2>&1
}

source_version() {
	local v
	v=$(dpkg-query -W -f='${Version}' "$source_pkg" 2>/dev/null) ||
		die "$source_pkg is not installed (apt-get install $source_pkg, or scripts/deps.sh)"
	[ -n "$v" ] || die "$source_pkg is not installed"
	echo "$v"
}

# cache_key names the source version (readable) plus a hash of everything
# else that shapes the build: the fragment, the settings above, the compiler
# (modules are built with the kernel's compiler).
cache_key() {
	local version hash cc
	version=$(source_version)
	[ -r "$fragment" ] || die "missing $fragment"
	cc=$(gcc --version 2>/dev/null | head -n 1) || die "gcc not found"
	hash=$({
		echo "recipe_rev=$recipe_rev"
		echo "base_configs=$base_configs"
		echo "make_targets=$make_targets"
		echo "cc=$cc"
		echo "fragment=$(sha256sum <"$fragment" | cut -d' ' -f1)"
	} | sha256sum | cut -c1-16)
	# Debian versions may hold ':' or '~'; kbuild refuses ':' in paths.
	echo "$(echo "$version" | tr -c 'A-Za-z0-9.+_\n-' '_')-$hash"
}

is_complete() {
	local dir=$1
	[ -s "$dir/vmlinuz" ] && [ -s "$dir/release" ] && [ -s "$dir/config" ] &&
		[ -s "$dir/build/Module.symvers" ]
}

# kmake runs the kernel's make without anything the caller's environment
# could inject (ARCH, O=, LOCALVERSION, a parent make's flags).
kmake() {
	env -u ARCH -u CROSS_COMPILE -u KBUILD_OUTPUT -u O -u LOCALVERSION \
		-u KCONFIG_CONFIG -u KCFLAGS -u KCPPFLAGS -u KBUILD_EXTMOD \
		-u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u CC -u LD \
		make -C "$ksrc" "$@"
}

# verify_config fails listing every option of the fragment that Kconfig did
# not keep (unmet dependencies are dropped silently by olddefconfig).
verify_config() {
	local config=$1 line sym lost=""
	while IFS= read -r line; do
		case $line in
		"# CONFIG_"*" is not set")
			sym=${line#\# }
			sym=${sym%% *}
			if grep -q "^$sym=" "$config"; then
				lost="$lost
  want '$line', got '$(grep "^$sym=" "$config")'"
			fi
			;;
		CONFIG_*=*)
			sym=${line%%=*}
			if ! grep -qxF -- "$line" "$config"; then
				lost="$lost
  want '$line', got '$(grep -E "^$sym=|^# $sym is not set" "$config" || echo "absent (dependency unmet or symbol unknown)")'"
			fi
			;;
		esac
	done <"$fragment"
	[ -z "$lost" ] || die "options of $fragment not applied by Kconfig:$lost"
}

# selftest_module builds a trivial module against the tree, to prove the
# kept tree works as KDIR before it becomes the cache.
selftest_module() {
	local dir=$1/selftest
	mkdir -p "$dir"
	cat >"$dir/kfw_selftest.c" <<-'EOF'
		#include <linux/module.h>
		static int __init kfw_selftest_init(void) { return 0; }
		module_init(kfw_selftest_init);
		MODULE_LICENSE("GPL");
	EOF
	echo 'obj-m := kfw_selftest.o' >"$dir/Kbuild"
	kmake M="$dir" modules
	[ -s "$dir/kfw_selftest.ko" ] || die "self-test module was not built"
	rm -rf "$dir"
}

# headers_tree copies out of the built tree what an external module build
# reads: the set of the linux-headers package that "make bindeb-pkg" makes
# (scripts/package/builddeb): the Makefiles, include/, scripts/, the
# include and scripts dirs of arch/x86, objtool, Module.symvers and .config.
# It is ~5% of the built tree; the sources and objects are not needed.
headers_tree() {
	local from=$1 to=$2
	mkdir -p "$to"
	(
		cd "$from" || exit 1
		{
			find . arch/x86 -maxdepth 1 -name 'Makefile*'
			find include scripts -type f -o -type l
			find arch/x86 -name Kbuild.platforms -o -name Platform
			find arch/x86 -type f \( -path '*/include/*' -o -path '*/scripts/*' \)
			echo tools/objtool/objtool
			echo Module.symvers
			echo .config
		} | tar -c -f - --no-recursion -T -
	) | tar -x -f - -C "$to"
}

# abandon runs on exit while a build is in progress: nothing half-built
# may remain where "path" or a later build would look.
# KFW_KEEP_FAILED_BUILD=1 keeps the tree for inspection instead (the next
# build removes it).
abandon() {
	if [ "${KFW_KEEP_FAILED_BUILD:-0}" = 1 ]; then
		echo "debug-kernel: kept the failed tree: $1" >&2
	else
		rm -rf "$1"
	fi
	echo "debug-kernel: build failed or interrupted; log: $2" >&2
}

build_steps() {
	local tmp=$1

	note "extracting $tarball"
	mkdir -p "$ksrc"
	xz -T0 -dc "$tarball" | tar -x -C "$ksrc" --strip-components=1

	note "configuring: $base_configs + $(basename "$fragment")"
	local cfg
	for cfg in $base_configs; do
		kmake "$cfg"
	done
	(cd "$ksrc" && scripts/kconfig/merge_config.sh -m .config "$fragment")
	kmake olddefconfig
	verify_config "$ksrc/.config"

	note "building $make_targets with -j$(nproc)"
	# shellcheck disable=SC2086 # word splitting of the target list is wanted
	kmake -j"$(nproc)" $make_targets
	kmake modules_prepare

	note "installing into $tmp"
	local release
	release=$(kmake -s kernelrelease)
	echo "$release" >"$tmp/release"
	cp "$ksrc/arch/x86/boot/bzImage" "$tmp/vmlinuz"
	cp "$ksrc/.config" "$tmp/config"
	cp "$ksrc/System.map" "$tmp/System.map"
	# modules.builtin lets modprobe in the guest succeed for built-ins.
	kmake INSTALL_MOD_PATH="$tmp/modules" modules_install
	local modlib=$tmp/modules/lib/modules/$release
	ln -sfn ../../../../build "$modlib/build"
	ln -sfn ../../../../build "$modlib/source"

	note "keeping only what module builds need"
	headers_tree "$ksrc" "$tmp/headers"
	rm -rf "$ksrc"
	mv "$tmp/headers" "$ksrc"
	note "self-test: building a module against the kept tree"
	selftest_module "$tmp"
}

cmd_build() {
	check_deps
	local key dir
	key=$(cache_key)
	dir=$cache_root/$key
	if is_complete "$dir"; then
		note "cached: $dir"
		return 0
	fi
	mkdir -p "$cache_root"
	exec 9>"$cache_root/$key.lock"
	if ! flock -n 9; then
		note "another build of $key is running; waiting for it"
		flock 9
	fi
	if is_complete "$dir"; then
		note "cached: $dir"
		return 0
	fi
	# Anything here is the leftover of an interrupted or failed build.
	# tmp, ksrc and log are global: the EXIT trap runs after this function's
	# locals are gone.
	tmp=$dir.tmp
	rm -rf "$tmp" "$dir"
	mkdir -p "$tmp"
	ksrc=$tmp/build
	log=$cache_root/$key.log
	: >"$log"
	trap 'abandon "$tmp" "$log"' EXIT
	trap 'exit 130' INT TERM HUP

	local start=$SECONDS
	note "building debug kernel $key (log: $log)"
	# A plain statement, not an "if": errexit must stay in force inside.
	build_steps "$tmp" 2>&1 | tee -a "$log"
	echo "build seconds: $((SECONDS - start))" | tee -a "$log"
	mv "$log" "$tmp/build.log"
	mv "$tmp" "$dir"
	trap - EXIT
	note "done in $((SECONDS - start)) s: $dir ($(cat "$dir/release"))"
}

cmd_path() {
	local dir
	dir=$cache_root/$(cache_key)
	is_complete "$dir" ||
		die "debug kernel not built for this key (expected $dir); run: $0 build"
	echo "$dir"
}

cmd_clean() {
	note "removing $cache_root"
	rm -rf "$cache_root"
}

usage() {
	echo "usage: $0 build|path|key|clean" >&2
	exit 2
}

[ $# -eq 1 ] || usage
case $1 in
build) cmd_build ;;
path) cmd_path ;;
key) cache_key ;;
clean) cmd_clean ;;
*) usage ;;
esac
