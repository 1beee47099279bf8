// Package firewall holds the kernel firewall backends that carry out grants:
// a grant lets one address reach one protocol/port for a limited time, and
// the kernel itself removes it when the time is up wherever the backend
// allows (SPEC.md §11 describes what a receiver does with an opened knock).
//
// A backend owns its own objects (chain, sets, table) and nothing else:
// Setup creates or repairs them idempotently, Teardown removes all of them.
package firewall

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/cipherknock/cipherknock/crypto"
)

// Grant is one open door: Addr may reach Proto/Port until it expires.
type Grant struct {
	Addr    netip.Addr
	Proto   crypto.Proto
	Port    uint16
	Timeout time.Duration // time left; on List, what the kernel reports
	// User names who asked, for logs and command templates; it is not part
	// of the grant's identity (Addr, Proto, Port) and kernel backends
	// ignore it.
	User string
}

// PortRange is a protocol and an inclusive range of ports.
type PortRange struct {
	Proto    crypto.Proto
	From, To uint16
}

// Options configure a backend.
type Options struct {
	// Protect lists the ports the backend closes to everyone without a
	// grant, so a server keeps its protected services closed by itself
	// whatever the rest of its ruleset does. Empty: the backend only adds
	// accepts, and the host's own ruleset must drop by default.
	Protect []PortRange
	// NetNS, when non-zero, is a file descriptor of the network namespace
	// to work in (tests); zero means the caller's namespace.
	NetNS int
	// Mark is the packet mark bit (or bits) the nftables backend sets on
	// granted packets so that a host's own default-drop chain can accept
	// them; zero means DefaultMark.
	Mark uint32
	// Log, when it lists ports, logs every packet to them just before
	// our drops see it, for a capture that reads the firewall's log
	// instead of packets (capture = nflog or log).
	Log Log
}

// Log says how packets to some ports are logged before they are dropped:
// to a netfilter log group (NFLOG), or, with a Prefix, to the kernel log
// as text lines. A packet logged is still dropped when it is not granted.
type Log struct {
	Ports  []PortRange // empty: nothing is logged
	Group  uint16      // NFLOG group, when Prefix is empty
	Prefix string      // kernel-log prefix, written with one space after it
}

// MaxLogPrefix is the longest log prefix: iptables' LOG target takes 29
// characters, and we add a space.
const MaxLogPrefix = 28

// ValidLogPrefix reports whether p can be a log prefix: 1 to MaxLogPrefix
// ASCII letters, digits and "_.:-".
func ValidLogPrefix(p string) bool {
	if p == "" || len(p) > MaxLogPrefix {
		return false
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_.:-", c)) {
			return false
		}
	}
	return true
}

// line is what the rule writes before "IN=": the prefix and a space.
func (l Log) line() string { return l.Prefix + " " }

// Backend is implemented by each firewall backend.
type Backend interface {
	// Name is the backend's configuration name ("iptables", "nftables", ...).
	Name() string
	// Setup installs or repairs the backend's static objects. Running it
	// twice leaves the same state as running it once, and keeps grants
	// that are already in the kernel.
	Setup(ctx context.Context) error
	// Grant opens g for g.Timeout. Granting an address/proto/port that is
	// already open replaces its remaining time; it never duplicates it.
	Grant(ctx context.Context, g Grant) error
	// Revoke closes g before its time, if it is open.
	Revoke(ctx context.Context, g Grant) error
	// List returns the grants currently open with their time left.
	List(ctx context.Context) ([]Grant, error)
	// Teardown removes every object the backend created.
	Teardown(ctx context.Context) error
}
