//go:build !linux

package firewall

import "errors"

// NewIPTables returns an error: iptables and ipset exist on Linux only.
func NewIPTables(opts Options) (Backend, error) {
	return nil, errors.New("firewall: iptables: needs Linux (iptables and ipset)")
}
