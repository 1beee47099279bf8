package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The control socket speaks one request and one reply per connection: the
// client sends a command name on a line, the daemon answers with a JSON
// object and closes. Commands: status, reload, stop (tear the firewall
// down and exit).

// Reply is the daemon's answer on the control socket.
type Reply struct {
	Status *Status `json:"status,omitempty"`
	// Message is one line for the operator: what a reload changed, what
	// a stop leaves in the kernel, which grants a revoke closed.
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// listenControl opens the control socket: a Unix socket of mode 0600 in a
// directory it creates with mode 0700 if missing. A stale socket left by a
// killed daemon is replaced; a live one is an error.
func listenControl(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another cipherknockd is running", path)
		}
		os.Remove(path)
	}
	// Created with no access for group and others from the start, so that
	// there is no moment when another user could connect.
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	return ln, nil
}

func (d *Daemon) serveControl(ctx context.Context, ln *net.UnixListener) {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				d.log.Error("control socket", "err", err)
			}
			return
		}
		d.life.handlers.Add(1)
		go func() {
			defer d.life.handlers.Done()
			d.handleControl(ctx, c)
		}()
	}
}

// peerAllowed admits root and the daemon's own user, whatever the socket's
// permissions say.
func peerAllowed(c *net.UnixConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return false
	}
	return cred.Uid == 0 || int(cred.Uid) == os.Geteuid()
}

func (d *Daemon) handleControl(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(40 * time.Second))
	var r Reply
	enc := json.NewEncoder(c)
	if !peerAllowed(c) {
		r.Error = "permission denied"
		enc.Encode(r)
		return
	}
	line, err := bufio.NewReader(io.LimitReader(c, 256)).ReadString('\n')
	if err != nil && line == "" {
		return
	}
	args := strings.Fields(line)
	if len(args) == 0 {
		args = []string{""}
	}
	switch cmd := args[0]; cmd {
	case "status":
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s := d.Status(sctx)
		cancel()
		r.Status = &s
	case "reload":
		msg, err := d.ReloadSummary()
		if err != nil {
			r.Error = err.Error()
			d.log.Error("reload failed; keeping the configuration in force", "err", err)
		}
		r.Message = msg
	case "revoke":
		f, err := ParseRevoke(args[1:])
		if err != nil {
			r.Error = err.Error()
			break
		}
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		gs, err := d.Revoke(rctx, f, "revoke requested")
		cancel()
		if err != nil {
			r.Error = err.Error()
		}
		if len(gs) == 0 {
			r.Message = "no open grant matched"
		} else {
			r.Message = fmt.Sprintf("%d grants revoked: %s", len(gs), grantList(gs))
		}
	case "stop", "remove":
		teardown := cmd == "remove"
		d.log.Info(cmd+" requested on the control socket", "remove-firewall", teardown)
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r.Message = d.stopSummary(sctx, teardown)
		cancel()
		d.Stop(teardown)
		select {
		case <-d.life.done:
			if d.life.err != nil {
				r.Error = d.life.err.Error()
			}
		case <-time.After(35 * time.Second):
			r.Error = "timed out waiting for the daemon to stop"
		}
	default:
		r.Error = fmt.Sprintf("unknown command %q", cmd)
	}
	enc.Encode(r)
}

// Request sends cmd to the daemon listening on the control socket at path
// and returns its reply.
func Request(path, cmd string) (*Reply, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(40 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return nil, err
	}
	var r Reply
	if err := json.NewDecoder(c).Decode(&r); err != nil {
		return nil, fmt.Errorf("control socket %s: bad reply: %w", path, err)
	}
	if r.Error != "" {
		return &r, errors.New(r.Error)
	}
	return &r, nil
}
