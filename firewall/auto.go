package firewall

import (
	"fmt"
	"strings"
)

// probeNFTables is ProbeNFTables, replaceable by tests.
var probeNFTables = ProbeNFTables

// Auto picks the backend for the configuration value "auto": nftables
// when the kernel's nf_tables works, else iptables with ipset. The reason
// says what was found, for the daemon's log and its doctor command.
func Auto(opts Options) (b Backend, reason string, err error) {
	perr := probeNFTables(opts.NetNS)
	if perr == nil {
		b, err = NewNFTables(opts)
		if err == nil {
			return b, "nftables: the kernel's nf_tables works", nil
		}
		perr = err
	}
	b, err = NewIPTables(opts)
	if err != nil {
		return nil, "", fmt.Errorf("firewall: no backend works: nftables: %s; iptables: %w",
			strings.TrimPrefix(perr.Error(), "firewall: nftables: "), bareError{err, "firewall: iptables: "})
	}
	return b, fmt.Sprintf("iptables: nftables unavailable (%v)", perr), nil
}

// bareError is err without the package and backend prefix that the
// message it is part of already says; errors.Is and As still see err.
type bareError struct {
	err    error
	prefix string
}

func (e bareError) Error() string { return strings.TrimPrefix(e.err.Error(), e.prefix) }
func (e bareError) Unwrap() error { return e.err }
