//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/ports"
)

// TestCaptureLoopback runs the real client in a fresh network namespace,
// captures its packets on the loopback with a raw socket, assembles them
// (shuffled and each sent twice) into the knock and opens it.
func TestCaptureLoopback(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.New(t, "client")
	bin := buildBinary(t)
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(key.Encode()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	realm, _ := crypto.NewRealm("lab", nil)
	opener := crypto.NewOpener(realm, map[uint16]*crypto.User{5: crypto.NewUser(&key)}, 0)
	span := encoding.DefaultSpan

	tests := []struct {
		name, via, target string
		args              []string
		mode              crypto.Mode
		addr              string
		close             bool  // cipherknock close: a close knock
		age               int64 // seconds the knock's time is behind the clock (--time-offset)
	}{
		{"udp-source", "udp", "127.0.0.1", nil, crypto.ModeSource, "", false, 0},
		{"tcp-ipv4", "tcp", "127.0.0.1", []string{"--address", "192.0.2.7"}, crypto.ModeIPv4, "192.0.2.7", false, 0},
		{"udp6-ipv6", "udp", "::1", []string{"--address", "2001:db8::9"}, crypto.ModeIPv6, "2001:db8::9", false, 0},
		{"tcp6-source", "tcp", "::1", nil, crypto.ModeSource, "", false, 0},
		{"udp-close", "udp", "127.0.0.1", nil, crypto.ModeSource, "", true, 0},
		{"udp-time-offset", "udp", "127.0.0.1", []string{"--time-offset=-300s"}, crypto.ModeSource, "", false, 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			family, proto := syscall.AF_INET, syscall.IPPROTO_UDP
			if tt.target == "::1" {
				family = syscall.AF_INET6
			}
			if tt.via == "tcp" {
				proto = syscall.IPPROTO_TCP
			}
			var fd int
			err := ns.Do(func() error {
				var err error
				fd, err = syscall.Socket(family, syscall.SOCK_RAW, proto)
				return err
			})
			if err != nil {
				t.Fatalf("raw socket in %s: %v", ns.Name, err)
			}
			defer syscall.Close(fd)
			tv := syscall.NsecToTimeval(int64(300 * time.Millisecond))
			syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)

			args := []string{bin, "knock", tt.target, "--duration", "90s", "--no-confirm"}
			if tt.close {
				args = []string{bin, "close", tt.target}
			}
			args = append(append(args, "--realm", "lab", "--user", "5", "--key-file", keyFile,
				"--port", "2222", "--via", tt.via, "--shuffle", "--repeat", "2"), tt.args...)
			cmd := ns.Command(args...)
			cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir(), "CIPHERKNOCK_KEY=")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("cipherknock: %v\n%s", err, out)
			}

			var sent []uint16
			buf := make([]byte, 2048)
			for {
				n, _, err := syscall.Recvfrom(fd, buf, 0)
				if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if port, ok := knockPort(buf[:n], family, proto); ok && span.Contains(port) {
					sent = append(sent, port)
				}
			}
			n := tt.mode.Len()
			if len(sent) != 2*n {
				t.Fatalf("captured %d packets in the span, want %d", len(sent), 2*n)
			}
			if slices.IsSorted(sent[:n]) {
				t.Error("--shuffle sent the first pass in position order")
			}
			var a encoding.Assembler
			seen := map[uint16]int{}
			for _, p := range sent {
				a.AddPort(span, p)
				seen[p]++
			}
			for p, c := range seen {
				if c != 2 {
					t.Errorf("port %d seen %d times, want 2", p, c)
				}
			}
			if !a.Complete() || a.Conflicted() || a.Len() != n {
				t.Fatalf("assembler: complete %v conflicted %v len %d", a.Complete(), a.Conflicted(), a.Len())
			}
			got, err := opener.Open(a.Knock(nil), time.Now().Unix()-tt.age)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			k := got.Knock
			action, duration := crypto.ActionOpen, uint16(90)
			if tt.close {
				action, duration = crypto.ActionClose, 0
			}
			if got.User != 5 || k.Action != action || k.Mode != tt.mode || k.Proto != ports.TCP || k.Port != 2222 || k.Duration != duration {
				t.Errorf("opened user %d %+v", got.User, k)
			}
			if tt.addr != "" && k.Addr != netip.MustParseAddr(tt.addr) {
				t.Errorf("address %v, want %s", k.Addr, tt.addr)
			}
			if d := time.Now().Unix() - int64(k.Time) - tt.age; d < 0 || d > 10 {
				t.Errorf("knock time %d s off, want %d s old", d, tt.age)
			}
		})
	}
}

// TestUnreachableHost knocks, from a namespace with no route but the
// loopback, on an address it cannot reach: one error line, exit status 1,
// and no packet leaves.
func TestUnreachableHost(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.New(t, "client")
	bin := buildBinary(t)
	key, _ := crypto.GenerateKey()
	for _, via := range []string{"udp", "tcp"} {
		cmd := ns.Command(bin, "knock", "192.0.2.1", "--realm", "lab", "--key-file", "-", "--via", via, "--no-confirm")
		cmd.Stdin = strings.NewReader(key.Encode())
		cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitUnconfirmed {
			t.Fatalf("%s: exit %v, want %d\n%s", via, err, exitUnconfirmed, out)
		}
		if !regexp.MustCompile(`^cipherknock: error: cannot send to 192\.0\.2\.1:[0-9]+: network is unreachable\n$`).Match(out) {
			t.Errorf("%s: output %q", via, out)
		}
	}
}

// knockPort returns the destination port of a UDP datagram or of a TCP SYN
// read from a raw socket. IPv4 raw sockets return the IP header, IPv6 ones
// do not.
func knockPort(b []byte, family, proto int) (uint16, bool) {
	if family == syscall.AF_INET {
		if len(b) < 20 {
			return 0, false
		}
		b = b[int(b[0]&0x0f)*4:]
	}
	if len(b) < 4 {
		return 0, false
	}
	if proto == syscall.IPPROTO_TCP {
		if len(b) < 14 || b[13]&0x12 != 0x02 { // SYN without ACK
			return 0, false
		}
	}
	return binary.BigEndian.Uint16(b[2:]), true
}
