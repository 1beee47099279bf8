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
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/cipherknock/cipherknock/ports"
)

// Grant is one open door: Addr may reach Proto/Port until it expires.
type Grant struct {
	Addr    netip.Addr
	Proto   ports.Proto
	Port    uint16
	Timeout time.Duration // time left; on List, what the kernel reports
	// User names who asked, for logs and command templates; it is not part
	// of the grant's identity (Addr, Proto, Port) and kernel backends
	// ignore it.
	User string
}

// Options configure a backend.
type Options struct {
	// Protect lists the ports the backend closes to everyone without a
	// grant, so a server keeps its protected services closed by itself
	// whatever the rest of its ruleset does. Empty: the backend only adds
	// accepts, and the host's own ruleset must drop by default.
	Protect []ports.Range
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
	// Name is the base name of the backend's kernel objects (the
	// nftables table; the iptables chain, upper-cased, and ipset sets,
	// with 4 and 6 appended). Empty means DefaultName. Two daemons with
	// different names never touch each other's objects.
	Name string
	// NoOwner turns the nftables table flags owner and persist off even
	// where the kernel has them, so that the table can be flushed by
	// others and the daemon relies on noticing and restoring it (what
	// kernels before 6.9 get anyway; tests use it to exercise that path).
	NoOwner bool
	// Tag is stored with the objects (a comment on the nftables chain's
	// first rule) to name the daemon that owns them: pid and
	// configuration file.
	Tag string
}

// Log says how packets to some ports are logged before they are dropped:
// to a netfilter log group (NFLOG), or, with a Prefix, to the kernel log
// as text lines. A packet logged is still dropped when it is not granted.
type Log struct {
	Ports  []ports.Range // empty: nothing is logged
	Group  uint16        // NFLOG group, when Prefix is empty
	Prefix string        // kernel-log prefix, written with one space after it
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

// DefaultName is the base name of the kernel objects when Options.Name is
// empty.
const DefaultName = "cipherknock"

// CheckName checks an object base name: 1 to 20 bytes of lower-case
// letters, digits and '-', starting with a letter (it must fit iptables'
// 28-byte chain names and ipset's 31-byte set names with room to spare).
func CheckName(s string) error {
	if len(s) == 0 || len(s) > 20 {
		return fmt.Errorf("%q: must be 1 to 20 bytes long", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || i > 0 && ('0' <= c && c <= '9' || c == '-')) {
			return fmt.Errorf("%q: only lower-case letters, digits and '-', starting with a letter", s)
		}
	}
	return nil
}

func (o Options) name() string {
	if o.Name == "" {
		return DefaultName
	}
	return o.Name
}

// Supervised is implemented by the kernel backends, whose objects other
// programs can remove or change (a host's "nft flush ruleset",
// "iptables -F", "iptables-restore"). The daemon watches them and
// restores what is lost.
type Supervised interface {
	// Verify returns nil when every object Setup made is in place and
	// unchanged, and an error saying what is missing or different.
	Verify(ctx context.Context) error
	// Watch calls changed whenever the kernel reports a change that may
	// have touched the backend's objects, until ctx is done; it returns
	// ErrNoNotifications at once when this backend cannot hear of
	// changes, and the caller must check periodically.
	Watch(ctx context.Context, changed func()) error
	// Protected reports whether the kernel itself keeps others from
	// removing the objects (nftables table flag owner), and why not.
	Protected() (bool, string)
}

// ErrNoNotifications is returned by Watch where the kernel sends no
// notifications for the backend's objects (iptables-legacy).
var ErrNoNotifications = errors.New("firewall: no change notifications for this backend")

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
