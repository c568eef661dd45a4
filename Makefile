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
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

BINS := bin/kfw_exporter bin/kfwctl bin/kfwlab

.PHONY: help deps build modules debug-kernel kmod-check lint unit lab check test clean

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST) | head -5
	@echo
	@echo "  deps          install missing Debian packages (scripts/deps.sh)"
	@echo "  build         bin/kfw_exporter, bin/kfwctl, bin/kfwlab"
	@echo "  modules       kfw.ko for every lab kernel, in build/kmod/<release>/"
	@echo "  debug-kernel  build (or reuse from cache) the KASAN/lockdep/kmemleak kernel"
	@echo "  kmod-check    sparse and checkpatch over kmod/"
	@echo "  lint          gofmt, go vet, staticcheck"
	@echo "  unit          Go unit tests with -race (no VM)"
	@echo "  lab           the in-VM suites on LAB_KERNELS (default: generic)"

deps:
	@scripts/deps.sh

build: deps
	$(GOBUILD) -o bin/kfw_exporter .
	$(GOBUILD) -o bin/kfwctl ./cmd/kfwctl
	$(GOBUILD) -o bin/kfwlab ./cmd/kfwlab

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
	$(GOBUILD) -o bin/kfwtraffic ./cmd/kfwtraffic
	$(GOBUILD) -o bin/kfwrun ./cmd/kfwrun
	bin/kfwlab modules -kernel $(RUN_KERNEL)
	bin/kfwrun up -kernel $(RUN_KERNEL) $(if $(RUN_FOR),-for $(RUN_FOR)) $(RUN_ARGS)
