# kfw: the kernel module, kfw_exporter, kfwctl and the lab that tests them.
#
#   make run     build everything, boot the lab VM with traffic, scrape it
#   make test    everything CI runs: unit tests and the lab on three kernels
#   make check   the quick loop: unit tests and the lab on the generic kernel
#   make help    every target
#
# Targets install missing Debian packages themselves (scripts/deps.sh).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# A fresh machine has Go in /usr/local/go but not always on PATH.
export PATH := $(PATH):/usr/local/go/bin
GO ?= go

# One version for the module, DKMS and the binaries: dkms.conf's.
VERSION := $(shell sed -n 's/^PACKAGE_VERSION="\([^"]*\)"$$/\1/p' kmod/dkms.conf)
REVISION := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BRANCH := $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILD_DATE := $(shell date -u +%Y%m%d-%H:%M:%S)
VERSION_PKG := github.com/prometheus/common/version
LDFLAGS := -s -w \
	-X $(VERSION_PKG).Version=$(VERSION) \
	-X $(VERSION_PKG).Revision=$(REVISION) \
	-X $(VERSION_PKG).Branch=$(BRANCH) \
	-X $(VERSION_PKG).BuildUser=kfw-make \
	-X $(VERSION_PKG).BuildDate=$(BUILD_DATE)
# Static binaries: they run in the lab VM, in a scratch container, anywhere.
GOBUILD := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"

# Lab kernels for `make lab`: any of generic, rt, debug.
LAB_KERNELS ?= generic
LAB_TIMEOUT ?= 150m
# Host tests outside tests/lab that boot the lab (generic kernel); `unit`
# runs the same packages with -short, which skips exactly these.
LAB_HOST_TESTS := TestMakeRun|TestDKMS|TestREADME|TestQuick
LAB_HOST_PKGS := ./cmd/kfwrun ./packaging ./bench .
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

BINS := bin/kfw_exporter bin/kfwctl bin/kfwlab

.PHONY: help deps build modules debug-kernel kmod-check lint unit lab check test clean

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST) | head -5
	@echo
	@echo "  deps          install missing Debian packages (scripts/deps.sh)"
	@echo "  build         bin/: kfw_exporter, kfwctl, kfwlab, kfwtraffic, kfwrun"
	@echo "  modules       kfw.ko for every lab kernel, in build/kmod/<release>/"
	@echo "  debug-kernel  build (or reuse from cache) the KASAN/lockdep/kmemleak kernel"
	@echo "  kmod-check    sparse and checkpatch over kmod/"
	@echo "  lint          gofmt, go vet, staticcheck"
	@echo "  unit          Go unit tests with -race (no VM)"
	@echo "  lab           the in-VM suites on LAB_KERNELS (default: generic), then the"
	@echo "                host tests that boot the lab (make run, DKMS, README)"
	@echo "  run           the lab VM with rules, traffic, kfw_exporter and a local Prometheus"
	@echo "  install       kfw_exporter, kfwctl, systemd units (DESTDIR, PREFIX)"
	@echo "  dkms-install  register kmod/ with DKMS; uninstall undoes both installs"
	@echo "  bench         measure kfw vs nftables/iptables, events, exporter: BENCHMARKS.md"
	@echo "                (BENCH_QUICK=1: a short smoke run)"

deps:
	@scripts/deps.sh

build: deps
	$(GOBUILD) -o bin/kfw_exporter .
	$(GOBUILD) -o bin/kfwctl ./cmd/kfwctl
	$(GOBUILD) -o bin/kfwlab ./cmd/kfwlab
	$(GOBUILD) -o bin/kfwtraffic ./cmd/kfwtraffic
	$(GOBUILD) -o bin/kfwrun ./cmd/kfwrun

# kfw.ko for each lab kernel that exists (the debug one only once built).
modules: build
	bin/kfwlab modules

debug-kernel: deps
	lab/kernels/debug-kernel.sh build

kmod-check: modules
	@rel=$$(bin/kfwlab kernels | awk '$$1 == "generic" { print $$2 }'); \
	test -n "$$rel" || { echo "kmod-check: no generic lab kernel" >&2; exit 1; }; \
	$(MAKE) -C build/kmod/$$rel check KVER=$$rel

lint: deps
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags labvm ./tests/lab/... ./lab/...
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags labvm ./tests/lab/... ./lab/...

unit: deps
	$(GO) test -race -short -count=1 ./...

# One VM at a time (-p 1): each wants both CPUs.
lab: modules
	@mkdir -p build
	KFW_LAB_KERNELS=$(LAB_KERNELS) $(GO) test -count=1 -p 1 -timeout $(LAB_TIMEOUT) -v ./tests/lab/... \
		2>&1 | tee build/lab-test.log
	$(GO) test -count=1 -p 1 -timeout $(LAB_TIMEOUT) -v -run '$(LAB_HOST_TESTS)' $(LAB_HOST_PKGS) \
		2>&1 | tee build/lab-host-test.log

check: kmod-check lint unit
	$(MAKE) lab LAB_KERNELS=generic

test: debug-kernel
	$(MAKE) kmod-check lint unit
	$(MAKE) lab LAB_KERNELS=generic,rt,debug

clean:
	rm -rf bin build

# ---------------------------------------------------------------------------
# make run: the lab on this machine (cmd/kfwrun; README.md, "Quick start").
# It builds what the guest runs, kfw.ko for RUN_KERNEL, boots the VM with
# traffic and kfw_exporter, starts Prometheus on 127.0.0.1:19090 and runs
# until Ctrl-C. RUN_FOR=90s instead checks the lab once ready, runs that long,
# checks again and stops (the exit status says whether the checks passed).
# RUN_ARGS: more kfwrun flags (bin/kfwrun up -h).
RUN_KERNEL ?= generic
RUN_FOR ?=
RUN_ARGS ?=

.PHONY: run install dkms-install uninstall

run: build
	bin/kfwlab modules -kernel $(RUN_KERNEL)
	bin/kfwrun up -kernel $(RUN_KERNEL) $(if $(RUN_FOR),-for $(RUN_FOR)) $(RUN_ARGS)

# ---------------------------------------------------------------------------
# Installing on a host (README.md, "Install on a host"): make install puts
# kfw_exporter, kfwctl and their systemd units, user and module-load entry in
# place; make dkms-install registers kfw.ko with DKMS, which rebuilds it for
# every new kernel; make uninstall undoes both. DESTDIR stages everything
# under another root: then nothing is started or reloaded, and DKMS works in
# DESTDIR's own trees (no depmod, no signing key in /var/lib/dkms).
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
MODULESLOADDIR ?= $(PREFIX)/lib/modules-load.d
DKMS ?= dkms
DKMS_KERNEL ?= $(shell uname -r)

UNITS := kfw_exporter.service kfw-rules.service
DKMS_SRC = $(DESTDIR)/usr/src/kfw-$(VERSION)
KMOD_SOURCES := kmod/Kbuild kmod/Makefile kmod/dkms.conf \
	$(filter-out %.mod.c,$(wildcard kmod/*.c)) $(wildcard kmod/*.h)
DKMS_FLAGS = $(if $(DESTDIR),--sourcetree $(DESTDIR)/usr/src --dkmstree $(DESTDIR)/var/lib/dkms \
	--installtree $(DESTDIR)/lib/modules --kernelsourcedir /lib/modules/$(DKMS_KERNEL)/build --no-depmod)
DKMS_RUN = $(if $(DESTDIR),mok_signing_key=$(DESTDIR)/var/lib/dkms/mok.key \
	mok_certificate=$(DESTDIR)/var/lib/dkms/mok.pub) $(DKMS)
# systemd runs here and we install into the real root.
SYSTEMD_LIVE = $(if $(DESTDIR),,$(wildcard /run/systemd/system))

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(MODULESLOADDIR) $(DESTDIR)$(SYSCONFDIR)/default $(DESTDIR)$(SYSCONFDIR)/kfw
	install -m 0755 bin/kfw_exporter bin/kfwctl $(DESTDIR)$(BINDIR)/
	for unit in $(UNITS); do \
		sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' packaging/$$unit.in \
			>$(DESTDIR)$(UNITDIR)/$$unit; \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$unit; \
	done
	install -m 0644 packaging/kfw_exporter.sysusers $(DESTDIR)$(SYSUSERSDIR)/kfw_exporter.conf
	install -m 0644 packaging/kfw.modules-load $(DESTDIR)$(MODULESLOADDIR)/kfw.conf
	test -e $(DESTDIR)$(SYSCONFDIR)/default/kfw_exporter || \
		install -m 0644 packaging/kfw_exporter.default $(DESTDIR)$(SYSCONFDIR)/default/kfw_exporter
	$(if $(SYSTEMD_LIVE),systemd-sysusers $(SYSUSERSDIR)/kfw_exporter.conf)
	$(if $(SYSTEMD_LIVE),systemctl daemon-reload)
	@echo "installed; next: make dkms-install, then systemctl enable --now kfw_exporter.service;"
	@echo "save rules for boot with kfwctl rules save >$(SYSCONFDIR)/kfw/rules && systemctl enable kfw-rules.service"

dkms-install:
	@if $(DKMS_RUN) status -m kfw -v $(VERSION) $(DKMS_FLAGS) 2>/dev/null | grep -q .; then \
		echo "$(DKMS) remove -m kfw -v $(VERSION) --all"; \
		$(DKMS_RUN) remove -m kfw -v $(VERSION) --all $(DKMS_FLAGS); \
	fi
	rm -rf $(DKMS_SRC)
	install -d $(DKMS_SRC)/uapi
	install -m 0644 $(KMOD_SOURCES) $(DKMS_SRC)/
	install -m 0644 kmod/uapi/*.h $(DKMS_SRC)/uapi/
	$(if $(DESTDIR),install -d $(DESTDIR)/var/lib/dkms $(DESTDIR)/lib/modules/$(DKMS_KERNEL))
	$(DKMS_RUN) add -m kfw -v $(VERSION) $(DKMS_FLAGS)
	$(DKMS_RUN) build -m kfw -v $(VERSION) -k $(DKMS_KERNEL) $(DKMS_FLAGS)
	$(DKMS_RUN) install -m kfw -v $(VERSION) -k $(DKMS_KERNEL) $(DKMS_FLAGS)

# Leaves the kfw-exporter user (systemd never deletes users), an edited
# /etc/default/kfw_exporter and your saved /etc/kfw/rules.
uninstall:
	$(if $(SYSTEMD_LIVE),systemctl disable --now $(UNITS) || true)
	rm -f $(DESTDIR)$(BINDIR)/kfw_exporter $(DESTDIR)$(BINDIR)/kfwctl \
		$(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS)) \
		$(DESTDIR)$(SYSUSERSDIR)/kfw_exporter.conf $(DESTDIR)$(MODULESLOADDIR)/kfw.conf
	if cmp -s packaging/kfw_exporter.default $(DESTDIR)$(SYSCONFDIR)/default/kfw_exporter; then \
		rm -f $(DESTDIR)$(SYSCONFDIR)/default/kfw_exporter; fi
	if [ -d $(DESTDIR)$(SYSCONFDIR)/kfw ]; then rmdir --ignore-fail-on-non-empty $(DESTDIR)$(SYSCONFDIR)/kfw; fi
	if command -v $(DKMS) >/dev/null && $(DKMS_RUN) status -m kfw -v $(VERSION) $(DKMS_FLAGS) 2>/dev/null | grep -q .; then \
		$(DKMS_RUN) remove -m kfw -v $(VERSION) --all $(DKMS_FLAGS); fi
	rm -rf $(DKMS_SRC)
	$(if $(SYSTEMD_LIVE),systemctl daemon-reload)

# ---------------------------------------------------------------------------
# make bench: kfw against no filter, nftables and iptables-nft on the packet
# path, against drop_monitor on the event path, and kfw_exporter against
# node_exporter (bench/cmd/kfwbench), written to BENCHMARKS.md and
# bench/results/ in under 20 minutes. Run it on a quiet machine:
# BENCH_ARGS=-wait-quiet=10m waits for one. BENCH_QUICK=1 is the smoke run
# (a few minutes, results under build/bench/quick/), as go test ./bench.
BENCH_QUICK ?=
BENCH_ARGS ?=

.PHONY: bench

bench: modules
	$(GO) run ./bench/cmd/kfwbench $(if $(filter 1 yes true,$(BENCH_QUICK)),-quick) $(BENCH_ARGS)
