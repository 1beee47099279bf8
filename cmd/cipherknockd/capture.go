package main

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/daemon"
	"github.com/cipherknock/cipherknock/sniff"
)

// capture opens the capture the configuration names, in the daemon's
// network namespace: AF_PACKET on the configured interfaces (with the
// trigger ports), the NFLOG group the firewall logs the span to, or
// kernel log lines.
func capture(log *slog.Logger) func(*config.Config) (daemon.Source, error) {
	return func(cfg *config.Config) (daemon.Source, error) {
		sc := sniff.Config{Span: cfg.Span, Interfaces: cfg.Interfaces, Loopback: cfg.Loopback}
		switch cfg.Capture {
		case "nflog":
			c, err := sniff.NewNFLog(sc, cfg.NFLogGroup, log)
			if err != nil {
				return nil, err
			}
			return logSource{c}, nil
		case "log":
			if cfg.LogSource == sniff.LogKmsg {
				if note, err := sniff.ProbeKmsg(); err == nil && note != "" {
					log.Warn("capture = log: " + note)
				}
			}
			c, err := sniff.NewLogCapture(sc, sniff.LogConfig{Source: cfg.LogSource, Prefix: cfg.LogPrefix}, log)
			if err != nil {
				return nil, err
			}
			return logSource{c}, nil
		}
		triggerCapture(cfg, &sc)
		s, err := sniff.New(sc, log)
		if err != nil {
			return nil, err
		}
		return sniffSource{s}, nil
	}
}

// logCapture is what the NFLOG and log-line captures have in common.
type logCapture interface {
	Run(ctx context.Context, fn func(*sniff.Packet)) error
	Stats() sniff.Stats
}

// logSource delivers the knocks of an NFLOG or log-line capture.
type logSource struct{ c logCapture }

func (s logSource) Run(ctx context.Context, handle func(netip.Addr, uint16)) error {
	return s.c.Run(ctx, func(p *sniff.Packet) { handle(p.Src, p.DstPort) })
}

// CaptureStats implements daemon.StatsSource.
func (s logSource) CaptureStats() daemon.CaptureStats { return captureStats(s.c.Stats()) }

func captureStats(st sniff.Stats) daemon.CaptureStats {
	return daemon.CaptureStats{Matched: st.Matched, Dropped: st.Dropped, Read: st.Read, Delivered: st.Delivered, Rejected: st.Rejected, Malformed: st.Malformed}
}
