package main

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/cipherknock/cipherknock/daemon"
	"github.com/cipherknock/cipherknock/policy"
	"github.com/cipherknock/cipherknock/sniff"
)

// capture opens AF_PACKET capture of the knock span on the configured
// interfaces, in the daemon's network namespace.
func capture(log *slog.Logger) func(*policy.Config) (daemon.Source, error) {
	return func(cfg *policy.Config) (daemon.Source, error) {
		s, err := sniff.New(sniff.Config{Span: cfg.Span, Interfaces: cfg.Interfaces, Loopback: cfg.Loopback}, log)
		if err != nil {
			return nil, err
		}
		return daemon.SourceFunc(func(ctx context.Context, handle func(netip.Addr, uint16)) error {
			return s.Run(ctx, func(p *sniff.Packet) { handle(p.Src, p.DstPort) })
		}), nil
	}
}
