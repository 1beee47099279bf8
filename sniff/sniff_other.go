//go:build !linux

package sniff

import (
	"context"
	"log/slog"
)

// Sniffer captures knock packets; only Linux has an implementation.
type Sniffer struct{}

// New returns ErrUnsupported outside Linux.
func New(cfg Config, log *slog.Logger) (*Sniffer, error) { return nil, ErrUnsupported }

// Run returns ErrUnsupported outside Linux.
func (s *Sniffer) Run(ctx context.Context, fn func(p *Packet)) error { return ErrUnsupported }

// RunBatch returns ErrUnsupported outside Linux.
func (s *Sniffer) RunBatch(ctx context.Context, fn func(ps []Packet)) error { return ErrUnsupported }

// Stats returns zero counters outside Linux.
func (s *Sniffer) Stats() Stats { return Stats{} }

// Close does nothing outside Linux.
func (s *Sniffer) Close() error { return nil }
