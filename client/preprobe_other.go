//go:build !unix

package client

import "net/netip"

// preProbe is not implemented here: an answer is never taken for an open
// port before the knock.
type preProbe struct{}

func startPreProbe(netip.Addr, uint16) *preProbe { return nil }
func (*preProbe) answered() bool                 { return false }
func (*preProbe) stop()                          {}
