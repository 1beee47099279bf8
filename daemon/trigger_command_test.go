package daemon

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/ports"
	"github.com/cipherknock/cipherknock/sniff"
)

// TestTriggerHostCommand: with firewall = command and trigger-mode = host a
// trigger's grant goes through the real command backend, whose {user}
// must accept the trigger's grant user (it once was "trigger NAME", which
// the backend refused, so every trigger grant failed). The commands are
// touch(1), run without a shell: the file names record what they got.
func TestTriggerHostCommand(t *testing.T) {
	touch := "/usr/bin/touch"
	if _, err := os.Stat(touch); err != nil {
		touch = "/bin/touch"
	}
	dir := t.TempDir()
	key, _ := crypto.GenerateKey()
	text := fmt.Sprintf(`[daemon]
realm = test
state-dir = %[1]s
control-socket = %[1]s/ctl.sock
firewall = command
command-drops = yes
command-open = %[2]s '%[1]s/open {user} {proto} {port}'
command-close = %[2]s '%[1]s/close {user} {proto} {port}'
trigger-mode = host
[trigger ident]
outbound = tcp/25
inbound = tcp/113
duration = 60
[user alice]
index = 3
key = %[3]s
ports = tcp/8080
`, dir, touch, key.Encode())
	cfg, err := config.Parse("test.conf", []byte(text), dir, 0o600, config.OS)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := firewall.NewCommand(firewall.CommandConfig{Open: cfg.CommandOpen, Close: cfg.CommandClose,
		JournalPath: filepath.Join(dir, "command.journal")}, firewall.Options{})
	if err != nil {
		t.Fatal(err)
	}
	src := &chanSource{knocks: make(chan pkt), trigs: make(chan sniff.Packet), done: make(chan struct{})}
	logs := &syncBuffer{}
	d := runDaemon(t, Options{
		Config:  cfg,
		Capture: func(*config.Config) (sniff.Capture, error) { return src, nil },
		Backend: func(*config.Config) (firewall.Backend, error) { return fw, nil },
		Log:     slog.New(slog.NewTextHandler(logs, nil)),
	})
	host, remote := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.1.1")
	src.trigs <- sniff.Packet{Src: host, Dst: remote, Transport: ports.TCP, DstPort: 25}
	<-src.done
	opened := filepath.Join(dir, "open trigger@ident tcp 113")
	waitFor(t, "the trigger's grant", func() bool {
		_, err := os.Stat(opened)
		return err == nil && d.trig.opened.Load() == 1
	})
	if got := logs.String(); strings.Contains(got, "grant failed") || strings.Contains(got, "not allowed") {
		t.Errorf("log:\n%s", got)
	}
}
