package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/client/stuntest"
	"github.com/cipherknock/cipherknock/crypto"
)

// reload appends lines to the configuration (its last section is the
// user's) and has the daemon read it again.
func (w *world) reload(lines string) {
	w.t.Helper()
	conf, err := os.ReadFile(w.conf)
	if err != nil {
		w.t.Fatal(err)
	}
	os.WriteFile(w.conf, append(conf, lines...), 0o600)
	before := strings.Count(w.logText(), "configuration reloaded")
	w.d.cmd.Process.Signal(syscall.SIGHUP)
	if !poll(15*time.Second, func() bool { return strings.Count(w.logText(), "configuration reloaded") > before }) {
		w.t.Fatalf("no reload; log:\n%s", w.logText())
	}
}

// TestReplayerOfRefusedKnock: a knock that the policy refuses for its
// source address, recorded and replayed from an address the policy
// accepts, is a replay: the replayer gets nothing (SPEC.md §7.2). The
// daemon used to record only the knocks it granted.
func TestReplayerOfRefusedKnock(t *testing.T) {
	w := newWorld(t, "")
	w.reload(fmt.Sprintf("sources = %s/32\n", w.thirdAddr)) // the client's own address is refused
	recorded := w.spec(servicePort, 20).ports(t)
	send(t, w.client, w.srvAddr, recorded)
	w.waitLog(`class="policy: source"`)
	send(t, w.third, w.srvAddr3, recorded)
	w.waitLog("class=replay", "last-source="+w.thirdAddr.String())
	w.mustStayClosed(w.third, w.srvAddr3)
	w.mustStayClosed(w.client, w.srvAddr)
	if strings.Contains(w.logText(), "knock accepted") {
		t.Fatalf("a knock was accepted:\n%s", w.logText())
	}
}

// TestRacer: an observer who delivers a copy of a knock from its own
// address before the original never gets the grant. In mode bound its copy
// fails as a bad tag and records nothing, so the original, arriving after
// it, still opens; in an explicit mode the copy is refused by the policy
// and, recorded, burns the original (SPEC.md §13.5).
func TestRacer(t *testing.T) {
	w := newWorld(t, "")
	t.Run("bound", func(t *testing.T) {
		s := w.spec(servicePort, 20)
		s.k.Mode, s.k.Addr = crypto.ModeBound, w.clientAddr
		ports := s.ports(t)
		send(t, w.third, w.srvAddr3, ports) // the racer's copy, complete first
		w.waitLog(`class="bad tag"`, "last-source="+w.thirdAddr.String())
		send(t, w.client, w.srvAddr, ports)
		w.mustOpen(w.client, w.srvAddr)
		w.waitLog("knock accepted", "addr="+w.clientAddr.String())
		w.mustStayClosed(w.third, w.srvAddr3)
	})
	t.Run("ipv4", func(t *testing.T) {
		s := w.spec(servicePort, 20)
		s.k.Mode, s.k.Addr = crypto.ModeIPv4, w.clientAddr
		ports := s.ports(t)
		send(t, w.third, w.srvAddr3, ports)
		w.waitLog(`class="policy: address"`, "last-source="+w.thirdAddr.String())
		send(t, w.client, w.srvAddr, ports)
		w.waitLog("class=replay", "last-source="+w.clientAddr.String())
		w.mustStayClosed(w.third, w.srvAddr3)
	})
}

// TestLyingSTUN: a STUN server that answers "you are the third host"
// cannot open the door for the third host, whatever keygen told the
// operator to configure for a profile in address mode auto: the client
// binds the answer under the tag, the daemon sees the knock come from the
// client and refuses it as a bad tag, and the client falls back to mode
// source, says so, and gets in. (keygen used to print
// allow-other-address = true for such profiles, and the daemon then
// granted the STUN server's choice.)
func TestLyingSTUN(t *testing.T) {
	w := newWorld(t, "")
	// The user lines keygen prints for a profile in mode auto, added to
	// the user's section.
	cfgHome := filepath.Join(w.dir, "home")
	cmd := w.server.Command(clientBin, "--json", "keygen", "--host", w.srvAddr.String(), "--realm", realm,
		"--user", fmt.Sprint(userIndex), "--port", fmt.Sprint(servicePort), "--proto", "tcp", "--duration", "30s",
		"--address", "auto", "--stun", net.JoinHostPort(w.srvAddr.String(), "3478"), "--name", "lying")
	cmd.Env = append(os.Environ(), "HOME="+cfgHome, "XDG_CONFIG_HOME="+cfgHome)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	var entry struct {
		Server struct {
			User map[string]any `json:"user"`
		} `json:"server"`
	}
	if err := json.Unmarshal(out, &entry); err != nil {
		t.Fatalf("keygen --json: %v", err)
	}
	var extra []string
	for k, v := range entry.Server.User {
		switch k {
		case "name", "index", "key", "ports", "max-duration":
		default:
			extra = append(extra, fmt.Sprintf("%s = %v", k, v))
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		w.reload(strings.Join(extra, "\n") + "\n")
	}

	// The lying STUN server, reachable from the client.
	if err := w.server.Do(func() error {
		stuntest.StartOn(t, "udp4", net.JoinHostPort(w.srvAddr.String(), "3478"), w.thirdAddr)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	args := []string{clientBin, "--json", "knock", w.srvAddr.String(),
		"--realm", realm, "--user", fmt.Sprint(userIndex), "--key-file", filepath.Join(w.dir, "alice.key"),
		"--port", fmt.Sprint(servicePort), "--proto", "tcp", "--duration", "20s",
		"--address", "auto", "--stun", net.JoinHostPort(w.srvAddr.String(), "3478"), "--wait", "2s", "--retries", "1"}
	text, err := w.client.Try(args...)
	if err != nil {
		t.Fatalf("cipherknock knock: %v\n%s\ndaemon log:\n%s", err, text, w.logText())
	}
	for _, want := range []string{"public address " + w.thirdAddr.String() + ", bound under the tag", `"event":"fallback"`, `"confirmed":true`} {
		if !strings.Contains(text, want) {
			t.Errorf("client output lacks %q:\n%s", want, text)
		}
	}
	w.waitLog(`class="bad tag"`, "knock accepted", "addr="+w.clientAddr.String())
	w.mustStayClosed(w.third, w.srvAddr3)
	if strings.Contains(w.logText(), "addr="+w.thirdAddr.String()) {
		t.Fatalf("a grant for the STUN server's choice:\n%s", w.logText())
	}
}

// TestBoundIPv6Default: a client whose address toward the server is a
// global IPv6 address binds it by default, and gets in.
func TestBoundIPv6Default(t *testing.T) {
	w := newWorld(t, "")
	out, err := w.client.Try(clientBin, "--json", "knock", w.srvAddr6.String(),
		"--realm", realm, "--user", fmt.Sprint(userIndex), "--key-file", filepath.Join(w.dir, "alice.key"),
		"--port", fmt.Sprint(servicePort), "--proto", "tcp", "--duration", "10s", "--wait", "2s")
	if err != nil {
		t.Fatalf("cipherknock knock: %v\n%s\n%s", err, out, w.logText())
	}
	if !strings.Contains(out, "binding the knock to this host's global address "+w.clientAddr6.String()) {
		t.Errorf("client output:\n%s", out)
	}
	w.waitLog("knock accepted", "addr="+w.clientAddr6.String())
}
