//go:build !linux

package sniff

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
)

func openKmsg() (*os.File, error) { return nil, ErrUnsupported }

func (c *LogCapture) runKmsg(ctx context.Context, fn func(*Packet)) error { return ErrUnsupported }

func inodeOf(f *os.File) uint64 { return 0 }

func statInode(st fs.FileInfo) uint64 { return 0 }

// NFLogCapture reads knock packets from a netfilter log group; only
// Linux has one.
type NFLogCapture struct{}

// NewNFLog returns ErrUnsupported outside Linux.
func NewNFLog(cfg Config, group uint16, log *slog.Logger) (*NFLogCapture, error) {
	return nil, ErrUnsupported
}

// CheckNFLogGroup returns ErrUnsupported outside Linux.
func CheckNFLogGroup(group uint16) error { return ErrUnsupported }

// Run returns ErrUnsupported outside Linux.
func (c *NFLogCapture) Run(ctx context.Context, fn func(p *Packet)) error { return ErrUnsupported }

// Stats returns zero counters outside Linux.
func (c *NFLogCapture) Stats() Stats { return Stats{} }

// Close does nothing outside Linux.
func (c *NFLogCapture) Close() error { return nil }

// ProbeNFLog returns ErrUnsupported outside Linux.
func ProbeNFLog(group uint16) error { return ErrUnsupported }

// ProbePacket returns ErrUnsupported outside Linux.
func ProbePacket() error { return ErrUnsupported }

// ProbeKmsg returns ErrUnsupported outside Linux.
func ProbeKmsg() (string, error) { return "", ErrUnsupported }
