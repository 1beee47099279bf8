# cipherknock: sudo make demo, sudo make test.
GO ?= go

.PHONY: all build demo test unit e2e fuzz bench clean

all: build

build:
	mkdir -p bin
	$(GO) build -o bin/cipherknockd ./cmd/cipherknockd
	if [ -d cmd/cipherknock ]; then $(GO) build -o bin/cipherknock ./cmd/cipherknock; fi

# A real knock against a real firewall in throwaway network namespaces.
demo:
	./scripts/demo.sh

# Everything: vet, unit tests and fuzz seeds, then, as root, the
# end-to-end tests in network namespaces.
test: unit e2e

unit:
	$(GO) vet ./...
	$(GO) test $$($(GO) list ./... | grep -v /e2e$$)

e2e:
	$(GO) test -count=1 -v ./e2e/

# Each fuzz target for a short while (they also run their seeds in unit).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./policy/ -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./replay/ -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME)

# The per-packet path and the eviction measurements.
bench:
	$(GO) test ./daemon/ -run '^$$' -bench . -benchmem

clean:
	rm -rf bin
