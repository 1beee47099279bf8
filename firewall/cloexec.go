package firewall

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// CloseOnExecAll marks every descriptor of the process above standard
// error close-on-exec. Go opens its own with O_CLOEXEC, but libraries
// that call socket(2) directly may not (gopacket's AF_PACKET socket is
// one), and a process may inherit descriptors without the flag: a child
// (a command backend's program, iptables) must hold nothing of the
// daemon's, least of all its packet capture. The command backend runs it
// before each command, the iptables backend before its iptables
// commands, and the daemon once its capture is open.
//
// One close_range(2) call with CLOSE_RANGE_CLOEXEC does it (Linux 5.11);
// older kernels get a walk over /proc/self/fd.
func CloseOnExecAll() {
	if closeRange() == nil {
		return
	}
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd <= 2 {
			continue
		}
		if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && fl&unix.FD_CLOEXEC == 0 {
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, fl|unix.FD_CLOEXEC)
		}
	}
}
