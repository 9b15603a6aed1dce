# berth — build, test and benchmark. Every target installs what it needs first,
# so `make bench` and `make test` work on a fresh Debian machine.
SWIFT        ?= swift
DEB_PACKAGES := libseccomp-dev libbpf-dev libelf-dev busybox-static crun runc hyperfine gcc libc6-dev iproute2 procps
RELEASE_BIN  := .build/release/berth-runtime
HELPER       := .build/helpers/berth-test-init

.PHONY: all deps build debug helper test unit-test bench clean

all: build

# apt-get only for what is missing: a warm machine pays one dpkg-query.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# Release binaries with the Swift stdlib linked in statically: a start costs ~3 ms, not ~13.
build: deps helper
	$(SWIFT) build -c release --static-swift-stdlib

debug: deps helper
	$(SWIFT) build --build-tests

# The static process that runs inside test and benchmark containers.
helper: $(HELPER)
$(HELPER): Tests/Helpers/berth-test-init.c
	@mkdir -p $(dir $@)
	gcc -static -O2 -Wall -o $@ $<

# Unit tests (fakes, no root) and integration tests (root, real kernel) in one run.
test: deps helper
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --parallel

bench: build
	$(RELEASE_BIN) --version >/dev/null
	.build/release/berth-bench --profile quick

clean:
	rm -rf .build
