package policy

import (
	"errors"
	"net/netip"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/ports"
)

// User is one [user NAME] section of the configuration: who may knock,
// and for what.
type User struct {
	Name        string
	Index       uint16
	Key         crypto.Key
	Ports       []ports.Range
	MaxDuration int // seconds
	Sources     []netip.Prefix
	// AllowAddress lists the networks, besides the knock's own source,
	// that the user's explicit-mode knocks may open (SPEC.md §11).
	AllowAddress []netip.Prefix
	Line         int // line of the section header
}

// Policy refusals (SPEC.md §11). Their messages double as the class names
// under which the daemon counts rejected knocks.
var (
	ErrPort     = errors.New("policy: port")
	ErrDuration = errors.New("policy: duration")
	ErrSource   = errors.New("policy: source")
	ErrAddress  = errors.New("policy: address")
)

// Check decides whether u may have what knock k asks for, k having arrived
// from src. It returns the address to open (or close): src itself for a
// source-mode or bound-mode knock (a bound knock's tag already proved that
// src is the address its sender meant), else the address in the knock,
// which must equal src or lie in one of the user's allow-address networks.
// A duration above the user's max-duration is refused, not shortened
// (SPEC.md §11).
func (u *User) Check(k *crypto.Knock, src netip.Addr) (netip.Addr, error) {
	src = src.Unmap()
	if !u.allowsSource(src) {
		return netip.Addr{}, ErrSource
	}
	if !u.AllowsPort(k.Proto, k.Port) {
		return netip.Addr{}, ErrPort
	}
	if k.Action == crypto.ActionOpen && int(k.Duration) > u.MaxDuration {
		return netip.Addr{}, ErrDuration
	}
	target := src
	switch k.Mode {
	case crypto.ModeSource, crypto.ModeBound:
	default:
		target = k.Addr.Unmap()
		if target != src && !contains(u.AllowAddress, target) {
			return netip.Addr{}, ErrAddress
		}
	}
	return target, nil
}

func contains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (u *User) allowsSource(a netip.Addr) bool { return contains(u.Sources, a) }

// AllowsPort reports whether one of u's port ranges holds proto/port.
func (u *User) AllowsPort(proto ports.Proto, port uint16) bool {
	return ports.Holds(u.Ports, proto, port)
}
