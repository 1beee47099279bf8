package sniff

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// openKmsg opens the kernel log buffer for reading, positioned after the
// last record so that only records written from now on are read.
func openKmsg() (*os.File, error) {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sniff: open /dev/kmsg: %w", err)
	}
	if _, err := unix.Seek(fd, 0, unix.SEEK_END); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sniff: /dev/kmsg: %w", err)
	}
	return os.NewFile(uintptr(fd), "/dev/kmsg"), nil
}

// runKmsg reads /dev/kmsg records: "PRI,SEQ,USEC,FLAGS;MESSAGE\n",
// then continuation lines (" KEY=VALUE") that belong to it. Each read
// returns one record. Only records of the kernel facility (PRI>>3 == 0)
// are read: a program that writes to /dev/kmsg gets the user facility.
func (c *LogCapture) runKmsg(ctx context.Context, fn func(*Packet)) error {
	var p Packet
	buf := make([]byte, 8192) // a record is at most about 1 KiB of text plus its fields
	raw, err := c.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("sniff: /dev/kmsg: %w", err)
	}
	fd := -1
	raw.Control(func(f uintptr) { fd = int(f) })
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		if ctx.Err() != nil {
			return nil
		}
		n, err := unix.Read(fd, buf)
		switch {
		case err == nil:
			c.record(buf[:n], &p, fn)
			continue
		case errors.Is(err, syscall.EPIPE):
			// Records were overwritten before we read them; the next
			// read continues with the oldest one left.
			c.dropped.Add(1)
			continue
		case errors.Is(err, syscall.EAGAIN):
		case errors.Is(err, syscall.EINTR):
			continue
		default:
			return fmt.Errorf("sniff: read /dev/kmsg: %w", err)
		}
		if _, err := unix.Poll(pfd, int(pollTimeout.Milliseconds())); err != nil && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("sniff: poll /dev/kmsg: %w", err)
		}
	}
}

// record handles one /dev/kmsg record.
func (c *LogCapture) record(b []byte, p *Packet, fn func(*Packet)) {
	semi := -1
	pri := 0
	for i, ch := range b {
		if ch == ';' {
			semi = i
			break
		}
	}
	if semi < 0 {
		return
	}
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			break
		}
		pri = pri*10 + int(ch-'0')
		if pri > 1<<16 {
			return
		}
	}
	if pri>>3 != 0 {
		return // not the kernel's: a program wrote it
	}
	msg := b[semi+1:]
	for i, ch := range msg {
		if ch == '\n' {
			msg = msg[:i]
			break
		}
	}
	c.line(msg, p, fn)
}
