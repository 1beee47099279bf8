package main

import (
	"log/slog"

	"github.com/cipherknock/cipherknock/daemon"
	"github.com/cipherknock/cipherknock/policy"
	"github.com/cipherknock/cipherknock/sniff"
)

// capture opens AF_PACKET capture of the knock span on the configured
// interfaces, in the daemon's network namespace.
func capture(log *slog.Logger) func(*policy.Config) (daemon.Source, error) {
	return func(cfg *policy.Config) (daemon.Source, error) {
		sc := sniff.Config{Span: cfg.Span, Interfaces: cfg.Interfaces, Loopback: cfg.Loopback}
		triggerCapture(cfg, &sc)
		s, err := sniff.New(sc, log)
		if err != nil {
			return nil, err
		}
		return sniffSource{s}, nil
	}
}
