//go:build !linux

package sniff

// Links returns ErrUnsupported outside Linux.
func Links() ([]Link, error) { return nil, ErrUnsupported }
