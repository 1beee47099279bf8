# cipherknock: sudo make demo, sudo make test.
GO ?= go

.PHONY: all build demo test unit e2e fuzz bench install clean

all: build

build:
	mkdir -p bin
	$(GO) build -o bin/cipherknockd ./cmd/cipherknockd
	$(GO) build -o bin/cipherknock ./cmd/cipherknock

# A real knock against a real firewall in throwaway network namespaces.
demo:
	./scripts/demo.sh

# Everything: vet, unit tests and fuzz seeds, then, as root, the
# end-to-end tests in network namespaces. Tests print each result (-v), so
# every skip is seen. CIPHERKNOCK_STRICT=1 turns every skip for a missing
# privilege or tool into a failure. COVERDIR=/abs/dir collects coverage:
# unit tests under COVERDIR/unit, the binaries the e2e tests run under
# COVERDIR/e2e; `go tool covdata percent -i=COVERDIR/unit,COVERDIR/e2e`
# merges them. The unit tests' timeout is 30 minutes: under -race and
# coverage the per-packet flood tests take minutes on a busy machine.
test: unit e2e

COVERPKG = github.com/cipherknock/cipherknock/...
ifneq ($(COVERDIR),)
UNITCOVER = -covermode=atomic -coverpkg=$(COVERPKG)
UNITCOVERDIR = -args -test.gocoverdir=$(COVERDIR)/unit
endif

unit:
	$(GO) vet ./...
	$(if $(COVERDIR),mkdir -p $(COVERDIR)/unit)
	$(GO) test -race -v -timeout 30m $(UNITCOVER) $$($(GO) list ./... | grep -v /e2e$$) $(UNITCOVERDIR)

e2e:
	$(if $(COVERDIR),CIPHERKNOCK_E2E_COVERDIR=$(COVERDIR)/e2e) $(GO) test -count=1 -v ./e2e/

# Each fuzz target for a short while (they also run their seeds in unit).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./policy/ -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./replay/ -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME)
	$(GO) test ./sniff/ -run '^$$' -fuzz FuzzTriggerFilterAgrees -fuzztime $(FUZZTIME)

# The per-packet path and the eviction measurements.
bench:
	$(GO) test ./daemon/ -run '^$$' -bench . -benchmem

# Install the daemon, its systemd unit and an example configuration (kept
# if one exists). Then: edit /etc/cipherknock/cipherknockd.conf, and
# systemctl enable --now cipherknockd.
PREFIX ?= /usr/local
install: build
	install -D -m 0755 bin/cipherknockd $(DESTDIR)$(PREFIX)/sbin/cipherknockd
	install -D -m 0755 bin/cipherknock $(DESTDIR)$(PREFIX)/bin/cipherknock
	install -D -m 0644 dist/cipherknockd.service $(DESTDIR)/etc/systemd/system/cipherknockd.service
	install -d -m 0700 $(DESTDIR)/etc/cipherknock
	if [ ! -f $(DESTDIR)/etc/cipherknock/cipherknockd.conf ]; then install -m 0600 dist/cipherknockd.conf $(DESTDIR)/etc/cipherknock/cipherknockd.conf; fi

clean:
	rm -rf bin
