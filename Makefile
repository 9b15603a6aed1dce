# berth — build, test and benchmark. Every target installs what it needs first,
# so `make bench` and `make test` work on a fresh Debian machine.
SWIFT        ?= swift
DEB_PACKAGES := libseccomp-dev libbpf-dev libelf-dev libssl-dev zlib1g-dev libzstd-dev libcurl4-openssl-dev libnftables-dev nftables podman containerd bpftool busybox-static skopeo docker-registry apache2-utils crun runc hyperfine gcc libc6-dev iproute2 procps tini openssl qemu-system-x86 apparmor
# The throw-away guest with a v2-only kernel (shared/ lies beside the checkout).
VM_RUN       ?= ../shared/vm/vm-run.sh
RELEASE_BIN  := .build/release/berth-runtime
HELPER       := .build/helpers/berth-test-init

.PHONY: all deps build image debug helper test test-v2 bench micro clean

all: build

# apt-get only for what is missing: a warm machine pays one dpkg-query.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Release binaries with the Swift stdlib linked in statically: a start costs ~3 ms, not ~13.
build: deps helper
	$(SWIFT) build -c release --static-swift-stdlib
	@$(MAKE) --no-print-directory image

# The default image, made locally with no network: busybox:latest in the engine's
# store (/var/lib/berth unless BERTH_DATA_ROOT says otherwise), remade only when missing.
BERTH ?= .build/release/berth
image:
	@$(BERTH) images -q busybox | grep -q . || $(BERTH) image bootstrap busybox --helper $(HELPER)

debug: deps helper
	$(SWIFT) build --build-tests

# The static process that runs inside test and benchmark containers.
helper: $(HELPER)
$(HELPER): Tests/Helpers/berth-test-init.c
	@mkdir -p $(dir $@)
	gcc -static -O2 -Wall -pthread -o $@ $<

# Unit tests (fakes, no root) and integration tests (root, real kernel) in one run,
# then the same test bundle in the v2-only guest (real cgroup v2 controllers).
test: deps helper
	$(SWIFT) build --build-tests
	@$(MAKE) --no-print-directory image BERTH=.build/debug/berth
	$(SWIFT) test --skip-build --parallel
	$(MAKE) test-v2

# Exit 125 from vm-run.sh means the guest never reported a status: that is said
# loudly and does not hide a test failure (any other non-zero status fails).
test-v2:
	@if [ ! -x "$(VM_RUN)" ]; then \
	  echo "=================================================================="; \
	  echo "cgroup v2 suite NOT RUN: $(VM_RUN) is missing"; \
	  echo "=================================================================="; \
	else \
	  $(VM_RUN) --setup >/dev/null || true; \
	  echo "cgroup v2 suite: the test bundle inside the v2-only guest (software emulation, a few minutes)"; \
	  status=0; $(VM_RUN) -t 2700 -e BERTH_TEST_EMULATED=1 "$(CURDIR)" '.build/debug/berthPackageTests.xctest --testing-library swift-testing' || status=$$?; \
	  if [ $$status -eq 125 ] || [ $$status -eq 124 ]; then \
	    echo "=================================================================="; \
	    echo "cgroup v2 suite NOT RUN: the guest did not start or timed out (status $$status)"; \
	    echo "=================================================================="; \
	  elif [ $$status -ne 0 ]; then exit $$status; fi; \
	fi

# The main job: reports/<timestamp>/{results.json,report.md,index.html}, then the
# same run becomes reports/example/ (the report the README links to).
# BENCH_FLAGS passes options through, e.g. BENCH_FLAGS="--only startup,syscalls".
BENCH_FLAGS ?=
bench: build
	$(RELEASE_BIN) --version >/dev/null
	.build/release/berth-bench --profile quick $(BENCH_FLAGS)
	@latest=$$(ls -d reports/2*/ | sort | tail -1); rm -rf reports/example; cp -r $$latest reports/example; \
	  echo "reports/example now holds $$latest"

# In-process benchmarks (ordo-one/benchmark, Benchmarks/BerthMicro): config decode, plan
# compile, cgroup apply on a scratch cgroupfs, report rendering.
micro: deps
	$(SWIFT) package --allow-writing-to-package-directory benchmark --format markdown

clean:
	rm -rf .build
