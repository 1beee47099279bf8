//go:build !linux

package firewall

import "errors"

// NewNFTables fails outside Linux: nftables is a Linux kernel subsystem.
func NewNFTables(opts Options) (Backend, error) {
	return nil, errors.New("firewall: nftables needs Linux")
}

// ProbeNFTables fails outside Linux.
func ProbeNFTables(netns int) error { return errors.New("nftables needs Linux") }
