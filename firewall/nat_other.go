//go:build !linux

package firewall

import (
	"context"
	"errors"
)

var errNATLinux = errors.New("firewall: nat: needs Linux (nftables)")

// NAT forwards ports of a NAT gateway; it exists on Linux only.
type NAT struct{}

// NewNAT returns an error: the forwarder needs Linux's nftables.
func NewNAT(opts NATOptions) (*NAT, error) { return nil, errNATLinux }

func (n *NAT) Setup(ctx context.Context) error                  { return errNATLinux }
func (n *NAT) Forward(ctx context.Context, fs ...Forward) error { return errNATLinux }
func (n *NAT) Replace(ctx context.Context, fs ...Forward) error { return errNATLinux }
func (n *NAT) Revoke(ctx context.Context, fs ...Forward) error  { return errNATLinux }
func (n *NAT) List(ctx context.Context) ([]Forward, error)      { return nil, errNATLinux }
func (n *NAT) Teardown(ctx context.Context) error               { return errNATLinux }
func (n *NAT) Close() error                                     { return nil }
