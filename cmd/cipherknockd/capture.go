package main

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"

	"github.com/cipherknock/cipherknock/daemon"
	"github.com/cipherknock/cipherknock/policy"
)

func capture(cfg *policy.Config, log *slog.Logger) daemon.Capture {
	return func(ctx context.Context, handle func(netip.Addr, uint16)) error {
		return errors.New("packet capture is not built in yet")
	}
}
