package main

import (
	"log/slog"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/sniff"
)

// capture opens the capture the configuration names, in the daemon's
// network namespace: AF_PACKET on the configured interfaces (with the
// trigger ports), the NFLOG group the firewall logs the span to, or
// kernel log lines.
func capture(log *slog.Logger) func(*config.Config) (sniff.Capture, error) {
	return func(cfg *config.Config) (sniff.Capture, error) {
		sc := cfg.SniffConfig()
		switch cfg.Capture {
		case "nflog":
			return sniff.NewNFLog(sc, cfg.NFLogGroup, log)
		case "log":
			if cfg.LogSource == sniff.LogKmsg {
				if note, err := sniff.ProbeKmsg(); err == nil && note != "" {
					log.Warn("capture = log: " + note)
				}
			}
			return sniff.NewLogCapture(sc, cfg.LogCaptureConfig(), log)
		}
		return sniff.New(sc, log)
	}
}
