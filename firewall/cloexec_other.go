//go:build !linux

package firewall

import "errors"

func closeRange() error { return errors.ErrUnsupported }
