# cipherknock: sudo make demo, sudo make test.
GO ?= go

.PHONY: all build demo test unit js e2e fuzz bench install deb man clean

all: build

# The version both binaries print: git describe without its "v", or
# 0.0.0~git<commit> before the first tag (a Debian-ordered version).
VERSION ?= $(shell v=$$(git describe --tags --dirty 2>/dev/null) && echo "$${v#v}" || echo "0.0.0~git$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)")
# Static, reproducible, stripped binaries: no cgo, no build paths.
LDFLAGS = -s -w -X github.com/cipherknock/cipherknock/internal/version.stamp=$(VERSION)
GOBUILD = CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'

build:
	mkdir -p bin
	$(GOBUILD) -o bin/cipherknockd ./cmd/cipherknockd
	$(GOBUILD) -o bin/cipherknock ./cmd/cipherknock

# Man pages, compressed for installation.
MANPAGES = cipherknock.1 cipherknockd.8 cipherknockd.conf.5
man:
	mkdir -p bin/pkg
	for m in $(MANPAGES); do gzip -9n <dist/man/$$m >bin/pkg/$$m.gz; done

# The Debian package, with nfpm (its own module in packaging/, so that its
# dependencies stay out of go.mod): bin/cipherknock_VERSION_ARCH.deb.
DEBARCH ?= $(shell $(GO) env GOARCH)
deb: build man
	sed 's|/usr/local/sbin/|/usr/sbin/|g' dist/cipherknockd.service >bin/pkg/cipherknockd.service
	cd packaging && $(GO) run . -version '$(VERSION)' -arch $(DEBARCH) -root .. -o ../bin/cipherknock_$(VERSION)_$(DEBARCH).deb
	@echo bin/cipherknock_$(VERSION)_$(DEBARCH).deb

# A real knock against a real firewall in throwaway network namespaces.
demo:
	./scripts/demo.sh

# Everything: vet, unit tests and fuzz seeds, the browser implementation
# in Node, then, as root, the end-to-end tests in network namespaces
# (headless Chromium among them). Tests print each result (-v), so
# every skip is seen. CIPHERKNOCK_STRICT=1 turns every skip for a missing
# privilege or tool into a failure. COVERDIR=/abs/dir collects coverage:
# unit tests under COVERDIR/unit, the binaries the e2e tests run under
# COVERDIR/e2e; `go tool covdata percent -i=COVERDIR/unit,COVERDIR/e2e`
# merges them. The unit tests' timeout is 30 minutes: under -race and
# coverage the per-packet flood tests take minutes on a busy machine; the
# e2e tests get as long, as they take over ten on a loaded one.
test: unit js e2e

COVERPKG = github.com/cipherknock/cipherknock/...
ifneq ($(COVERDIR),)
UNITCOVER = -covermode=atomic -coverpkg=$(COVERPKG)
UNITCOVERDIR = -args -test.gocoverdir=$(COVERDIR)/unit
endif

unit:
	$(GO) vet ./...
	$(if $(COVERDIR),mkdir -p $(COVERDIR)/unit)
	$(GO) test -race -v -timeout 30m $(UNITCOVER) $$($(GO) list ./... | grep -v /e2e$$) $(UNITCOVERDIR)

# web/ck.js against every test vector, in Node's test runner, and the
# pages' integrity hashes (node web/node/sri.js rewrites them).
# It ends with one go-test-like ok/FAIL line, which .ci/run counts.
js:
	@if node --test --test-reporter=spec web/node/*.test.js; then echo "ok  	web/node (node --test)"; else echo "FAIL	web/node (node --test)"; exit 1; fi

e2e:
	$(if $(COVERDIR),CIPHERKNOCK_E2E_COVERDIR=$(COVERDIR)/e2e) $(GO) test -count=1 -v -timeout 30m ./e2e/

# Each fuzz target for a short while (they also run their seeds in unit).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./config/ -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./config/ -run '^$$' -fuzz '^FuzzRule$$' -fuzztime $(FUZZTIME)
	$(GO) test ./profile/ -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/lex/ -run '^$$' -fuzz FuzzSplit -fuzztime $(FUZZTIME)
	$(GO) test ./replay/ -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME)
	$(GO) test ./sniff/ -run '^$$' -fuzz FuzzTriggerFilterAgrees -fuzztime $(FUZZTIME)
	$(GO) test ./sniff/ -run '^$$' -fuzz FuzzLogLine -fuzztime $(FUZZTIME)
	$(GO) test ./sniff/ -run '^$$' -fuzz FuzzLogStream -fuzztime $(FUZZTIME)
	$(GO) test ./sniff/ -run '^$$' -fuzz FuzzNFLogBatch -fuzztime $(FUZZTIME)
	$(GO) test ./web/ -run '^$$' -fuzz FuzzRequest -fuzztime $(FUZZTIME)

# The per-packet path and the eviction measurements.
bench:
	$(GO) test ./daemon/ -run '^$$' -bench . -benchmem

# Install both binaries, the systemd unit and its capture drop-ins (as
# examples), the man pages, the knock page's files for cipherknock lab,
# and a first configuration (the example, with REALM or else this host's
# name as realm; an existing one is kept). Then give it its user's key
# (cipherknockd(8), EXAMPLES) and
# systemctl enable --now cipherknockd.
PREFIX ?= /usr/local
REALM ?=
install: build man
	install -D -m 0755 bin/cipherknockd $(DESTDIR)$(PREFIX)/sbin/cipherknockd
	install -D -m 0755 bin/cipherknock $(DESTDIR)$(PREFIX)/bin/cipherknock
	install -d -m 0755 $(DESTDIR)$(PREFIX)/share/cipherknock/web
	install -m 0644 web/*.html web/*.js web/*.css web/*.svg web/*.webmanifest $(DESTDIR)$(PREFIX)/share/cipherknock/web/
	sed 's|/usr/local/sbin/|$(PREFIX)/sbin/|g' dist/cipherknockd.service >bin/pkg/cipherknockd.service
	install -D -m 0644 bin/pkg/cipherknockd.service $(DESTDIR)/etc/systemd/system/cipherknockd.service
	install -D -m 0644 bin/pkg/cipherknock.1.gz $(DESTDIR)$(PREFIX)/share/man/man1/cipherknock.1.gz
	install -D -m 0644 bin/pkg/cipherknockd.8.gz $(DESTDIR)$(PREFIX)/share/man/man8/cipherknockd.8.gz
	install -D -m 0644 bin/pkg/cipherknockd.conf.5.gz $(DESTDIR)$(PREFIX)/share/man/man5/cipherknockd.conf.5.gz
	install -D -m 0644 README.md $(DESTDIR)/usr/share/doc/cipherknock/README.md
	install -D -m 0644 dist/cipherknockd.conf $(DESTDIR)/usr/share/doc/cipherknock/examples/cipherknockd.conf
	install -D -m 0644 dist/capture-nflog.conf $(DESTDIR)/usr/share/doc/cipherknock/examples/capture-nflog.conf
	install -D -m 0644 dist/capture-log.conf $(DESTDIR)/usr/share/doc/cipherknock/examples/capture-log.conf
	install -d -m 0700 $(DESTDIR)/etc/cipherknock $(DESTDIR)/var/lib/cipherknockd
	if [ ! -e $(DESTDIR)/etc/cipherknock/cipherknockd.conf ]; then bin/cipherknockd new-config -c $(DESTDIR)/etc/cipherknock/cipherknockd.conf $(if $(REALM),--realm '$(REALM)'); fi

clean:
	rm -rf bin
