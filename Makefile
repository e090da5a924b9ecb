# rruntime — build, demo, tests, install, benchmarks.
TARGET  := x86_64-unknown-linux-gnu
BIN     := target/$(TARGET)/release/rruntime
PREFIX  ?= /usr/local
DEMO_DIR ?= $(CURDIR)/demo-bundle

.PHONY: all build demo test soak unit clippy fmt install bench integration conformance clean \
	test-vm bench-vm vm-image

all: build

build:
	cargo build --release
	@mkdir -p target/release && cp -f $(BIN) target/release/rruntime
	@echo "built target/release/rruntime"

# Builds the binary and runs a busybox container from a bundle generated from busybox-static.
demo: build
	./integration/demo.sh target/release/rruntime $(DEMO_DIR)

# Unit tests and root integration tests (tests/ drives the built binary).
# The test code builds with the quick `ci` profile; integration tests run the release binary.
test: build
	RRUNTIME_TEST_BIN=$(CURDIR)/$(BIN) cargo test --profile ci -- --test-threads=$${TEST_THREADS:-4}

# 1000 sequential container lifecycles with leak checks; prints the time per container of the
# first and last hundred (SOAK_N=… for another count). `make test` runs a 100-lifecycle version.
soak: build
	RRUNTIME_TEST_BIN=$(CURDIR)/$(BIN) cargo test --profile ci --test soak -- --ignored --nocapture --test-threads=1 soak_1000

clippy:
	cargo clippy --all-targets -- -D warnings

fmt:
	cargo fmt --check

install: build
	install -D -m 0755 target/release/rruntime $(DESTDIR)$(PREFIX)/bin/rruntime

bench: build
	./integration/bench/bench.sh target/release/rruntime

integration: build
	./integration/run-all.sh target/release/rruntime

# The test suite, the caller scripts (rruntime and runc) and the demo inside a Debian 12 guest with
# pure cgroup v2 and systemd (QEMU, no KVM needed; the image is cached in /var/tmp/rruntime-vm).
# See integration/vm/test-vm.sh for VM_STEPS, VM_TESTS, VM_TEST_THREADS; logs in target/test-vm.
# The full run (no VM_STEPS/VM_TESTS given) then boots a second guest with systemd's hybrid
# layout (VM_CGROUP=hybrid: v1 controllers + cgroup2) for the systemd driver's and the v1
# backend's tests there (logs in target/test-vm-hybrid; VM_HYBRID=0 leaves it out).
test-vm:
	./integration/vm/test-vm.sh
	@if [ -z "$${VM_STEPS:-}$${VM_TESTS:-}" ] && [ "$${VM_HYBRID:-1}" != 0 ]; then \
		VM_CGROUP=hybrid VM_NAME="$${VM_NAME:-default}-hybrid" VM_STEPS=suite \
		VM_TESTS='^(systemd|cgroups_v1)$$' VM_RESULTS=$(CURDIR)/target/test-vm-hybrid \
		./integration/vm/test-vm.sh; fi

# `make bench` inside the guest (rruntime vs crun vs runc there).
bench-vm:
	VM_STEPS=bench VM_RESULTS=$(CURDIR)/target/bench-vm ./integration/vm/test-vm.sh

vm-image:
	./integration/vm/vm.sh build

# The OCI runtime-tools validation suite (needs ../shared/conformance and RUNTIME_TOOLS_GIT).
conformance: build
	../shared/conformance/run-conformance $(CURDIR)/target/release/rruntime

clean:
	cargo clean
	rm -rf $(DEMO_DIR)
