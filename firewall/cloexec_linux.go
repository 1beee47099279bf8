package firewall

import (
	"math"

	"golang.org/x/sys/unix"
)

// closeRange marks every descriptor from 3 on close-on-exec in one call;
// it is a variable so tests can play a kernel older than 5.11.
var closeRange = func() error { return unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC) }
