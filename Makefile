# cipherknock: sudo make demo, sudo make test.
GO ?= go

.PHONY: all build demo test unit js e2e fuzz bench install clean

all: build

build:
	mkdir -p bin
	$(GO) build -o bin/cipherknockd ./cmd/cipherknockd
	$(GO) build -o bin/cipherknock ./cmd/cipherknock

# A real knock against a real firewall in throwaway network namespaces.
demo:
	./scripts/demo.sh

# Everything: vet, unit tests and fuzz seeds, the browser implementation
# in Node, then, as root, the end-to-end tests in network namespaces
# (headless Chromium among them).
test: unit js e2e

unit:
	$(GO) vet ./...
	$(GO) test -race $$($(GO) list ./... | grep -v /e2e$$)

# web/ck.js against every test vector, in Node's test runner, and the
# pages' integrity hashes (node web/node/sri.js rewrites them).
# It ends with one go-test-like ok/FAIL line, which .ci/run counts.
js:
	@if node --test --test-reporter=spec web/node/*.test.js; then echo "ok  	web/node (node --test)"; else echo "FAIL	web/node (node --test)"; exit 1; fi

e2e:
	$(GO) test -count=1 -v ./e2e/

# Each fuzz target for a short while (they also run their seeds in unit).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./policy/ -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./replay/ -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME)
	$(GO) test ./sniff/ -run '^$$' -fuzz FuzzTriggerFilterAgrees -fuzztime $(FUZZTIME)
	$(GO) test ./sniff/ -run '^$$' -fuzz FuzzLogLine -fuzztime $(FUZZTIME)
	$(GO) test ./sniff/ -run '^$$' -fuzz FuzzLogStream -fuzztime $(FUZZTIME)
	$(GO) test ./sniff/ -run '^$$' -fuzz FuzzNFLogBatch -fuzztime $(FUZZTIME)
	$(GO) test ./web/ -run '^$$' -fuzz FuzzRequest -fuzztime $(FUZZTIME)

# The per-packet path and the eviction measurements.
bench:
	$(GO) test ./daemon/ -run '^$$' -bench . -benchmem

# Install the daemon, its systemd unit and an example configuration (kept
# if one exists), and the knock page's files for cipherknock lab. Then: edit /etc/cipherknock/cipherknockd.conf, and
# systemctl enable --now cipherknockd.
PREFIX ?= /usr/local
install: build
	install -D -m 0755 bin/cipherknockd $(DESTDIR)$(PREFIX)/sbin/cipherknockd
	install -D -m 0755 bin/cipherknock $(DESTDIR)$(PREFIX)/bin/cipherknock
	install -d -m 0755 $(DESTDIR)$(PREFIX)/share/cipherknock/web
	install -m 0644 web/*.html web/*.js web/*.css web/*.svg web/*.webmanifest $(DESTDIR)$(PREFIX)/share/cipherknock/web/
	install -D -m 0644 dist/cipherknockd.service $(DESTDIR)/etc/systemd/system/cipherknockd.service
	install -d -m 0700 $(DESTDIR)/etc/cipherknock
	if [ ! -f $(DESTDIR)/etc/cipherknock/cipherknockd.conf ]; then install -m 0600 dist/cipherknockd.conf $(DESTDIR)/etc/cipherknock/cipherknockd.conf; fi

clean:
	rm -rf bin
