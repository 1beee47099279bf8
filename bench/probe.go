package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"
)

// The knock-to-use prober. The firewall drops SYNs to the protected port
// until a grant is in, and a dropped SYN is only sent again after a
// second, so a single connect cannot tell when the door opened. The
// prober instead starts a new non-blocking connect every probeInterval
// and gives each probeLife to be answered; the first that completes is
// the moment the port accepted a connection. Resolution: probeInterval.
const (
	probeInterval = 250 * time.Microsecond
	probeLife     = 3 * time.Millisecond
)

type knockResult struct {
	ok        bool
	latency   time.Duration // client start until the port accepted a connection
	clientOK  bool          // the client exited with status 0
	clientRun time.Duration // client start until it exited
	err       string
}

// knockAndProbe runs in the client namespace (its thread is switched
// there by the caller, so the client process starts there too). It starts
// client (nil: no client, the port should already be open) and probes
// dst from src until a connection is accepted or timeout passes.
func knockAndProbe(client *exec.Cmd, src netip.Addr, dst netip.AddrPort, timeout time.Duration) knockResult {
	t0 := time.Now()
	var waitc chan error
	var exited time.Time
	if client != nil {
		if err := client.Start(); err != nil {
			return knockResult{err: fmt.Sprintf("start client: %v", err)}
		}
		waitc = make(chan error, 1)
		go func() {
			err := client.Wait()
			exited = time.Now()
			waitc <- err
		}()
	}
	ok, at, perr := probe(src, dst, t0, timeout)
	res := knockResult{ok: ok, latency: at.Sub(t0)}
	if perr != nil {
		res.err = perr.Error()
	}
	if client != nil {
		select {
		case err := <-waitc:
			res.clientOK = err == nil
			res.clientRun = exited.Sub(t0)
			if err != nil && res.err == "" && !ok {
				res.err = fmt.Sprintf("client: %v", err)
			}
		case <-time.After(3 * time.Second):
			client.Process.Kill()
			<-waitc
			if res.err == "" && !ok {
				res.err = "client did not exit"
			}
		}
	} else {
		res.clientOK = true
	}
	return res
}

type pendingProbe struct {
	fd    int
	start time.Time
}

func probe(src netip.Addr, dst netip.AddrPort, t0 time.Time, timeout time.Duration) (bool, time.Time, error) {
	sa := &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
	local := &unix.SockaddrInet4{Addr: src.As4()}
	var pend []pendingProbe
	defer func() {
		for _, p := range pend {
			unix.Close(p.fd)
		}
	}()
	var last time.Time
	pfds := make([]unix.PollFd, 0, 32)
	for {
		now := time.Now()
		if now.Sub(t0) > timeout {
			return false, now, nil
		}
		if now.Sub(last) >= probeInterval {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return false, now, err
			}
			// A closed SYN_SENT socket sends nothing; a RST would
			// otherwise be the only effect of linger 0.
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			if err := unix.Bind(fd, local); err != nil {
				unix.Close(fd)
				return false, now, err
			}
			if err := unix.Connect(fd, sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
				unix.Close(fd)
				if !errors.Is(err, unix.ECONNREFUSED) {
					return false, now, err
				}
			} else {
				pend = append(pend, pendingProbe{fd, now})
			}
			last = now
		}
		// Retire probes whose SYN was dropped.
		kept := pend[:0]
		for _, p := range pend {
			if now.Sub(p.start) > probeLife {
				unix.Close(p.fd)
				continue
			}
			kept = append(kept, p)
		}
		pend = kept
		pfds = pfds[:0]
		for _, p := range pend {
			pfds = append(pfds, unix.PollFd{Fd: int32(p.fd), Events: unix.POLLOUT})
		}
		wait := probeInterval - time.Since(last)
		if wait < 0 {
			wait = 0
		}
		ts := unix.NsecToTimespec(int64(wait))
		n, err := unix.Ppoll(pfds, &ts, nil)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return false, time.Now(), err
		}
		if n <= 0 {
			continue
		}
		at := time.Now()
		for i, pf := range pfds {
			if pf.Revents == 0 {
				continue
			}
			fd := int(pf.Fd)
			soerr, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if soerr == 0 && pf.Revents&unix.POLLOUT != 0 {
				return true, at, nil
			}
			// Refused or failed: drop this probe, keep going.
			unix.Close(fd)
			pend[i].fd = -1
		}
		kept = pend[:0]
		for _, p := range pend {
			if p.fd >= 0 {
				kept = append(kept, p)
			}
		}
		pend = kept
	}
}
