package main

import "golang.org/x/sys/unix"

// clockUnsynchronised reports whether the kernel says the system clock is
// not synchronised to a time source (adjtimex(2) returns TIME_ERROR).
func clockUnsynchronised() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	return err == nil && state == unix.TIME_ERROR
}
