package policy

import (
	"errors"
	"net/netip"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/ports"
)

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

// Protect returns the union of every user's ports, merged and sorted: what
// the firewall keeps closed to everyone without a grant.
func (c *Config) Protect() []ports.Range {
	var all []ports.Range
	for _, u := range c.Users {
		all = append(all, u.Ports...)
	}
	all = append(all, c.triggerProtect()...)
	return ports.Merge(all)
}

// Opener returns a knock opener for the configured realm and users, and the
// users by index for policy decisions. Each call returns a fresh Opener, as
// an Opener must not be shared between goroutines.
func (c *Config) Opener() (*crypto.Opener, map[uint16]*User, error) {
	realm, err := crypto.NewRealm(c.Realm, c.RealmKey)
	if err != nil {
		return nil, nil, err
	}
	keys := make(map[uint16]*crypto.User, len(c.Users))
	byIndex := make(map[uint16]*User, len(c.Users))
	for _, u := range c.Users {
		keys[u.Index] = crypto.NewUser(&u.Key)
		byIndex[u.Index] = u
	}
	return crypto.NewOpener(realm, keys, c.Window), byIndex, nil
}
