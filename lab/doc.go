// Package lab boots kfw's test lab: real kernels under qemu (TCG), each VM
// running one payload command as root with the host's root file system
// shared read-only over 9p, so the repository and every host tool are
// visible at their host paths.
//
// Kernels (FindKernel): generic and rt are Debian's newest linux-image-amd64
// and linux-image-rt-amd64 found under /boot; debug is the KASAN, lockdep,
// kmemleak and UBSAN kernel cached by lab/kernels/debug-kernel.sh.
//
// A run (Start, VM.Wait) boots the kernel with a busybox initramfs built and
// cached per kernel under build/lab/initramfs. Its init mounts the host
// root, fresh /proc, /sys, /dev, /tmp and /run, and the run directory (a
// second, writable 9p share at /run/kfwlab), runs the payload in a chroot
// with a clean environment, saves the payload's output and exit status,
// the taint flags, the kmemleak report and dmesg there, and powers off. The
// run fails on the payload's status and on kernel problems found in the
// serial console and dmesg (Result.Err). A watchdog stops qemu after
// Config.Timeout.
//
// RunSuite is the entry point of the in-VM test suites under tests/lab; the
// guest side of those suites uses package lab/guest. BuildModule builds
// kfw.ko for a lab kernel under build/kmod/<release>. See lab/README.md.
package lab
