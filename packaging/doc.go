// Package packaging holds what make install puts on a host: the systemd
// units of kfw_exporter and of the boot-time rule restore (*.service.in,
// with @BINDIR@ and @SYSCONFDIR@ filled in by make), the exporter's user
// (sysusers.d), its flags file (/etc/default/kfw_exporter) and the
// modules-load.d entry. Its tests check these files, make install,
// make dkms-install and make uninstall, the Dockerfile and the Kubernetes
// example in deploy/.
package packaging
