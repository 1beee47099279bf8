package main

import (
	"errors"
	"log/slog"

	"github.com/cipherknock/cipherknock/daemon"
	"github.com/cipherknock/cipherknock/policy"
)

func capture(log *slog.Logger) func(*policy.Config) (daemon.Source, error) {
	return func(*policy.Config) (daemon.Source, error) {
		return nil, errors.New("packet capture is not built in yet")
	}
}
