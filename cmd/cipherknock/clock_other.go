//go:build !linux

package main

// clockUnsynchronised cannot tell here.
func clockUnsynchronised() bool { return false }
