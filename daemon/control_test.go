package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/ports"
	"github.com/cipherknock/cipherknock/sniff"
)

// knocked starts a daemon and opens tcp/8080 and udp/5005 for alice from
// client.
func knocked(t *testing.T) (*harness, *memBackend) {
	t.Helper()
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	h := start(t, t.TempDir(), key, fw)
	h.send(client, seal(t, "test", key, 3, openKnock(8080, 30)))
	h.send(client, seal(t, "test", key, 3, crypto.Knock{Action: crypto.ActionOpen, Proto: ports.UDP, Port: 5005, Duration: 40}))
	waitFor(t, "grants", func() bool {
		_, a := fw.get(client, ports.TCP, 8080)
		_, b := fw.get(client, ports.UDP, 5005)
		return a && b && h.d.counters.accepted.Load() == 2
	})
	waitFor(t, "socket", func() bool { _, err := Request(h.cfg.ControlSocket, "status"); return err == nil })
	return h, fw
}

// TestControlRevoke: the control socket's revoke closes the grants its
// filter selects, by address, by address and port, or by user, says
// which, and refuses arguments it cannot read.
func TestControlRevoke(t *testing.T) {
	h, fw := knocked(t)
	sock := h.cfg.ControlSocket
	r, err := Request(sock, "revoke 198.18.1.2 udp/5005")
	if err != nil || r.Message != "1 grants revoked: 198.18.1.2 udp/5005 (alice)" {
		t.Fatalf("revoke by port: %v %+v", err, r)
	}
	if _, ok := fw.get(client, ports.UDP, 5005); ok {
		t.Error("udp/5005 still open")
	}
	if _, ok := fw.get(client, ports.TCP, 8080); !ok {
		t.Error("tcp/8080 closed by a revoke of udp/5005")
	}
	if r, err := Request(sock, "revoke 198.18.9.9"); err != nil || r.Message != "no open grant matched" {
		t.Errorf("revoke of another address: %v %+v", err, r)
	}
	if r, err := Request(sock, "revoke --user bob"); err != nil || r.Message != "no open grant matched" {
		t.Errorf("revoke of another user: %v %+v", err, r)
	}
	if r, err := Request(sock, "revoke --user alice"); err != nil || r.Message != "1 grants revoked: 198.18.1.2 tcp/8080 (alice)" {
		t.Errorf("revoke by user: %v %+v", err, r)
	}
	if n := len(h.d.Status(context.Background()).Grants); n != 0 {
		t.Errorf("%d grants left", n)
	}
	if !strings.Contains(h.logs.String(), `msg="grant revoked" why="revoke requested" user=alice addr=198.18.1.2 proto=tcp port=8080`) {
		t.Errorf("log:\n%s", h.logs)
	}
	for cmd, want := range map[string]string{
		"revoke nonsense":           `revoke: "nonsense" is not an IP address`,
		"revoke 198.18.1.2 tcp/1-9": `revoke: "tcp/1-9" is not PROTO/PORT`,
		"revoke":                    "revoke: give ADDRESS [PROTO/PORT] or --user NAME",
		"frobnicate":                `unknown command "frobnicate"`,
		"":                          `unknown command ""`,
	} {
		if _, err := Request(sock, cmd); err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %s", cmd, err, want)
		}
	}
}

// TestRevokeListFails: when the backend cannot list its grants, revoke
// says so and closes nothing.
func TestRevokeListFails(t *testing.T) {
	h, fw := knocked(t)
	fw.mu.Lock()
	fw.listErr = errors.New("list: netlink: no buffer space")
	fw.mu.Unlock()
	if _, err := Request(h.cfg.ControlSocket, "revoke --user alice"); err == nil || !strings.Contains(err.Error(), "no buffer space") {
		t.Errorf("revoke: %v", err)
	}
	if st := h.d.Status(context.Background()); st.GrantsError != "list: netlink: no buffer space" {
		t.Errorf("status: %+v", st)
	}
	fw.mu.Lock()
	fw.listErr, fw.revokeErr = nil, errors.New("revoke refused")
	fw.mu.Unlock()
	gs, err := h.d.Revoke(context.Background(), RevokeFilter{User: "alice"}, "test")
	if len(gs) != 0 || err == nil || !strings.Contains(err.Error(), "revoke refused") {
		t.Errorf("revoke: %v %v", gs, err)
	}
}

// TestControlStop: stop leaves the grants to expire in the kernel and
// says so; Run returns, and the firewall stays set up.
func TestControlStop(t *testing.T) {
	h, fw := knocked(t)
	r, err := Request(h.cfg.ControlSocket, "stop")
	if err != nil {
		t.Fatal(err)
	}
	want := "the drops stay in the kernel: tcp/8080, udp/5000-5010, the knock span 20480-30719 (tcp and udp) stay closed; 2 grants left to expire in the kernel (the last in 40s); `cipherknockd remove` takes the firewall objects away"
	if r.Message != want {
		t.Errorf("got  %s\nwant %s", r.Message, want)
	}
	if err := <-h.runErr; err != nil {
		t.Error(err)
	}
	h.cancel = nil
	if fw.torndown || len(fw.grants) != 2 {
		t.Errorf("stop tore down: %v, %d grants", fw.torndown, len(fw.grants))
	}
}

// TestControlRemove: remove tears the firewall down and says which ports
// are now reachable.
func TestControlRemove(t *testing.T) {
	h, fw := knocked(t)
	r, err := Request(h.cfg.ControlSocket, "remove")
	if err != nil {
		t.Fatal(err)
	}
	if r.Message != RemoveSummary(h.cfg) || !strings.Contains(r.Message, "are now reachable from anyone") {
		t.Errorf("message %s", r.Message)
	}
	if err := <-h.runErr; err != nil {
		t.Error(err)
	}
	h.cancel = nil
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if !fw.torndown || len(fw.grants) != 0 {
		t.Errorf("remove left the firewall: torn down %v, %d grants", fw.torndown, len(fw.grants))
	}
}

// TestRemoveTeardownFails: a teardown the backend refuses is Run's error,
// and the remove request reports it.
func TestRemoveTeardownFails(t *testing.T) {
	h, fw := knocked(t)
	fw.mu.Lock()
	fw.teardownErr = errors.New("nftables: delete table: busy")
	fw.mu.Unlock()
	if _, err := Request(h.cfg.ControlSocket, "remove"); err == nil || err.Error() != "teardown: nftables: delete table: busy" {
		t.Errorf("remove: %v", err)
	}
	if err := <-h.runErr; err == nil {
		t.Error("Run returned no error")
	}
	h.cancel = nil
}

// TestListenControl: a stale socket of a killed daemon is replaced; a
// live one, or a file that is not a socket, is an error that says so.
func TestListenControl(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run", "ctl.sock")
	ln, err := listenControl(path)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Dir(path))
	if st.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v", st.Mode())
	}
	if _, err := listenControl(path); err == nil || !strings.Contains(err.Error(), "another cipherknockd is running") {
		t.Errorf("second listener: %v", err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // a killed daemon leaves its socket behind
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	ln, err = listenControl(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln.Close()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := listenControl(file); err == nil || !strings.Contains(err.Error(), "exists and is not a socket") {
		t.Errorf("regular file: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "notadir"), nil, 0o600)
	if _, err := listenControl(filepath.Join(dir, "notadir", "ctl.sock")); err == nil || !strings.HasPrefix(err.Error(), "control socket: ") {
		t.Errorf("under a file: %v", err)
	}
}

// TestRequestBadReply: a reply that is not the daemon's JSON is an error
// naming the socket.
func TestRequestBadReply(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			bufio.NewReader(c).ReadString('\n')
			fmt.Fprintln(c, "HTTP/1.1 400 Bad Request")
			c.Close()
		}
	}()
	if _, err := Request(path, "status"); err == nil || !strings.Contains(err.Error(), "control socket "+path+": bad reply") {
		t.Errorf("got %v", err)
	}
	if _, err := Request(filepath.Join(t.TempDir(), "none"), "status"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("no socket: %v", err)
	}
}

// TestStopBeforeRun: a Stop that comes before Run has started is not
// lost: Run sets the firewall up and returns.
func TestStopBeforeRun(t *testing.T) {
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	capt := &chanCapture{run: func(ctx context.Context, _ func(*sniff.Packet)) error { <-ctx.Done(); return nil }}
	d, err := New(Options{
		Config:  testConfig(t, t.TempDir(), key),
		Capture: captureOf(capt),
		Backend: func(*config.Config) (firewall.Backend, error) { return fw, nil },
		Log:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	d.Stop(false)
	done := make(chan error, 1)
	go func() { done <- d.Run(context.Background()) }()
	select {
	case err := <-done:
		if err != nil || fw.setups != 1 {
			t.Errorf("Run: %v, %d setups", err, fw.setups)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

// TestRunCaptureFails: a capture that cannot open is Run's error, and a
// capture opened but never run (the control socket is taken) is closed.
func TestRunCaptureFails(t *testing.T) {
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	dir := t.TempDir()
	d, err := New(Options{
		Config:  testConfig(t, dir, key),
		Capture: func(*config.Config) (sniff.Capture, error) { return nil, errors.New("sniff: needs CAP_NET_RAW") },
		Backend: func(*config.Config) (firewall.Backend, error) { return fw, nil },
		Log:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Run(context.Background()); err == nil || err.Error() != "sniff: needs CAP_NET_RAW" {
		t.Errorf("Run: %v", err)
	}

	os.WriteFile(filepath.Join(dir, "ctl.sock"), nil, 0o600) // not a socket
	capt := &chanCapture{}
	d, err = New(Options{
		Config:  testConfig(t, dir, key),
		Capture: captureOf(capt),
		Backend: func(*config.Config) (firewall.Backend, error) { return fw, nil },
		Log:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Run: %v", err)
	}
	if !capt.closed.Load() {
		t.Error("the capture was not closed")
	}
}
