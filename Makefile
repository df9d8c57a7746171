# gzfs — build, test and demo.
#
#   make demo    install the tools if missing, build, pack a demo file, show it
#   make test    install the tools if missing, gofmt/vet, tests (race where concurrent)
#   make build   build bin/gzfs
#   make bench   benchmarks (placeholder)

SHELL := /bin/bash
comma := ,
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO       ?= go
BIN      ?= $(CURDIR)/bin/gzfs
DEMO_DIR ?= /tmp/gzfs-demo
FUZZTIME ?= 5s
# Build tags: libdeflate (the default) links the cgo libdeflate codec, 2-3x
# faster than pure Go, and zlib for the checkpoint indexes of foreign gzip
# files (make deps installs libdeflate-dev and zlib1g-dev); TAGS= builds
# pure Go. Passed through GOFLAGS so that the binaries the tests build themselves
# get them as well.
TAGS     ?= libdeflate
ifneq ($(strip $(TAGS)),)
export GOFLAGS := $(strip $(shell $(GO) env GOFLAGS) -tags=$(subst $(eval) ,$(comma),$(strip $(TAGS))))
endif

# Packages with concurrency run under the race detector; the rest run plainly.
RACE_DIRS := blockfile blockindex fs gzindex
RACE_RE   := blockfile|blockindex|fs|gzindex
# Per-invocation limits, guards against a hang (with the fuzz run and the
# quick benchmark of .ci/run, at most 5 minutes there, about 20 minutes if
# every step hung); a normal make test takes about 8 minutes on 2 cores.
RACE_TIMEOUT   ?= 5m
PUREGO_TIMEOUT ?= 3m
TEST_TIMEOUT   ?= 7m
# The file exerciser's long mode (make fsx-long).
FSX_LONG_OPS   ?= 500000
FSX_LONG_SEEDS ?= 1,2,3,4,5,6,7,8

# Commands the tests and the demo need, and the Debian packages that hold them.
DEPS_CMDS := fusermount3 pigz bgzip gzip zcat getfattr git systemd-analyze sqlite3 stdbuf
DEPS_PKGS := fuse3 pigz tabix gzip attr git systemd sqlite3 coreutils

# make install: the binary, the mount(8) helper and the example units.
PREFIX  ?= /usr/local
DESTDIR ?=

.PHONY: all build install deps test-cluster demo demo-offline demo-mount test fmt-check vet test-race test-purego test-rest fuzz fsx-long bench bench-quick clean

all: build

## build: compile the gzfs binary into bin/
build:
	$(GO) build -o $(BIN) ./cmd/gzfs

## install: gzfs in $(DESTDIR)$(PREFIX)/bin, /sbin/mount.fuse.gzfs (mount -t fuse.gzfs, fstab, systemd mount units), docs and the example unit in $(PREFIX)/share/doc/gzfs
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/gzfs
	install -d $(DESTDIR)/sbin
	ln -sfn $(PREFIX)/bin/gzfs $(DESTDIR)/sbin/mount.fuse.gzfs
	install -D -m 0644 -t $(DESTDIR)$(PREFIX)/share/doc/gzfs docs/mount.md docs/format.md README.md
	install -D -m 0644 contrib/systemd/mnt-logs.mount $(DESTDIR)$(PREFIX)/share/doc/gzfs/examples/mnt-logs.mount

## deps: install fuse3, pigz, tabix (bgzip), gzip, attr, git, systemd and sqlite3 with apt-get when a command is missing
deps:
	@missing=""; \
	for c in $(DEPS_CMDS); do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
		echo "missing:$$missing -> apt-get install $(DEPS_PKGS)"; \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
		$$sudo apt-get update; \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y --no-install-recommends $(DEPS_PKGS); \
	fi
	@if ! /usr/bin/python3 -c 'import indexed_gzip' >/dev/null 2>&1; then \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
		$$sudo apt-get update; \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y --no-install-recommends python3 python3-indexed-gzip; \
	fi
	@if [[ " $(TAGS) " == *" libdeflate "* ]] && { [ ! -e /usr/include/libdeflate.h ] || [ ! -e /usr/include/zlib.h ]; }; then \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
		$$sudo apt-get update; \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y --no-install-recommends libdeflate-dev zlib1g-dev; \
	fi

## demo: the offline tour, then the mount tour
demo: deps build demo-offline demo-mount

# A ~40 MiB log file: pack it, show the ratio, read a range at random,
# prove that plain zcat reads it.
demo-offline:
	@mkdir -p $(DEMO_DIR)
	@echo "== making $(DEMO_DIR)/app.log"
	@seq 1 500000 | awk '{ printf "2026-11-23T12:%02d:%02dZ INFO request id=%d path=/api/v1/items/%d status=%d\n", ($$1/60)%60, $$1%60, $$1, ($$1*7919)%5000, ($$1%17==0 ? 500 : 200) }' > $(DEMO_DIR)/app.log
	@ls -l $(DEMO_DIR)/app.log
	@echo "== gzfs pack -f app.log (BGZF, blocks compressed in parallel)"
	$(BIN) pack -f $(DEMO_DIR)/app.log
	@echo "== gzfs stats app.log.gz"
	$(BIN) stats $(DEMO_DIR)/app.log.gz
	@echo "== gzfs cat --offset 20M --length 300 app.log.gz (inflates one block)"
	$(BIN) cat --offset 20M --length 300 $(DEMO_DIR)/app.log.gz; echo
	@echo "== for comparison, gzip -6 as one stream: $$(gzip -6 -c $(DEMO_DIR)/app.log | wc -c) bytes"
	@echo "== gzfs fsck app.log.gz"
	$(BIN) fsck $(DEMO_DIR)/app.log.gz
	@echo "== no lock-in: zcat reads it without gzfs"
	zcat $(DEMO_DIR)/app.log.gz | cmp - $(DEMO_DIR)/app.log && echo "zcat output is identical to app.log"

# The main job: mount a demo backing directory, write and read through it,
# show stored vs logical sizes, prove zcat reads the backing files, unmount.
demo-mount:
	@fusermount3 -u -z $(DEMO_DIR)/mnt 2>/dev/null || true
	@rm -rf $(DEMO_DIR)/backing && mkdir -p $(DEMO_DIR)/backing $(DEMO_DIR)/mnt
	@echo "== gzfs mount $(DEMO_DIR)/backing $(DEMO_DIR)/mnt"
	$(BIN) mount --log $(DEMO_DIR)/gzfs.log $(DEMO_DIR)/backing $(DEMO_DIR)/mnt
	@trap 'fusermount3 -u $(DEMO_DIR)/mnt 2>/dev/null || true' EXIT; \
	set -x; \
	cp $(DEMO_DIR)/app.log $(DEMO_DIR)/mnt/app.log; \
	mkdir -p $(DEMO_DIR)/mnt/logs; \
	seq 1 1000 | awk '{ print "2026-11-23T12:00:00Z line " $$1 " of a growing log" }' >> $(DEMO_DIR)/mnt/logs/live.log; \
	ls -l $(DEMO_DIR)/mnt $(DEMO_DIR)/mnt/logs; \
	ls -l $(DEMO_DIR)/backing $(DEMO_DIR)/backing/logs; \
	cmp $(DEMO_DIR)/mnt/app.log $(DEMO_DIR)/app.log; \
	tail -n 2 $(DEMO_DIR)/mnt/logs/live.log; \
	getfattr -n user.gzfs.stored_size $(DEMO_DIR)/mnt/app.log; \
	{ set +x; } 2>/dev/null; \
	logical=$$(stat -c %s $(DEMO_DIR)/mnt/app.log); stored=$$(stat -c %s $(DEMO_DIR)/backing/app.log.gz); \
	echo "== app.log: logical $$logical bytes, stored $$stored bytes, ratio $$(awk -v l=$$logical -v s=$$stored 'BEGIN{printf "%.2f", l/s}')"; \
	echo "== du (real disk use) through the mount: $$(du -k $(DEMO_DIR)/mnt/app.log | cut -f1) KiB"; \
	zcat $(DEMO_DIR)/backing/app.log.gz | cmp - $(DEMO_DIR)/app.log && echo "== zcat of the backing file gives app.log back, without gzfs"; \
	fusermount3 -u $(DEMO_DIR)/mnt; trap - EXIT; \
	echo "== unmounted; the backing directory keeps plain .gz files:"; ls -l $(DEMO_DIR)/backing

## test: everything CI runs
test: deps fmt-check vet test-race test-purego test-rest fuzz

## fmt-check: fail when gofmt would change a file
fmt-check:
	@out="$$(gofmt -l .)"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Packages with concurrency, under the race detector.
test-race:
	@dirs=""; for d in $(RACE_DIRS); do [ -d "$$d" ] && dirs="$$dirs ./$$d/..."; done; \
	if [ -n "$$dirs" ]; then set -x; $(GO) test -race -count=1 -timeout $(RACE_TIMEOUT) $$dirs; fi

# The pure-Go codec (a build without the libdeflate tag) reads and writes the
# same format: run the codec and engine tests without the tag too.
test-purego:
	$(GO) test -tags= -short -count=1 -timeout $(PUREGO_TIMEOUT) ./bgzf ./blockfile

# Everything else (codec, CLI end-to-end tests, integration).
test-rest:
	@pkgs="$$($(GO) list ./... | grep -vE '/($(RACE_RE))$$')"; \
	if [ -n "$$pkgs" ]; then set -x; $(GO) test -count=1 -timeout $(TEST_TIMEOUT) $$pkgs; fi

## fuzz: a short run of every fuzz target (FUZZTIME each)
fuzz:
	GO="$(GO)" FUZZTIME=$(FUZZTIME) bash contrib/fuzz.sh

## test-cluster: only the many-machines tests (GlusterFS replica-2 volume of this machine; make test runs them too)
test-cluster: deps
	$(GO) test -count=1 -timeout 10m -run '^TestCluster' -v ./integration

## fsx-long: the file exerciser through the mount, FSX_LONG_SEEDS x FSX_LONG_OPS operations (hours)
fsx-long: deps
	$(GO) test -count=1 -timeout 0 -run '^TestFSX$$' -v ./integration -args -fsx.ops=$(FSX_LONG_OPS) -fsx.seeds=$(FSX_LONG_SEEDS)

## bench: benchmark vs pigz/bgzip/gzip/loopback (issue 5): ratios to bench/results.md and .svg (18–36 min, by machine)
bench:
	bench/run.sh

## bench-quick: the same at small sizes, a CI smoke test (< 3 min); fails only when something is broken
bench-quick:
	bench/run.sh --quick

clean:
	rm -rf $(CURDIR)/bin $(DEMO_DIR)
