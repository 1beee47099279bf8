package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/sniff"
)

// TestReloadRestartOnly: a reload reports every restart-only key that
// changed, as the key table classifies it, keeps its old value, and
// applies the reloadable ones. wait-for-interfaces and command-timeout
// were missing from the hand-kept list that came before the table, so a
// reload took them silently.
func TestReloadRestartOnly(t *testing.T) {
	dir := t.TempDir()
	key, _ := crypto.GenerateKey()
	conf := func(extra string) *config.Config {
		text := fmt.Sprintf("[daemon]\nrealm = test\nstate-dir = %[1]s\ncontrol-socket = %[1]s/ctl.sock\n%[2]s[user alice]\nindex = 3\nkey = %[3]s\nports = tcp/8080\n",
			dir, extra, key.Encode())
		c, err := config.Parse(filepath.Join(dir, "test.conf"), []byte(text), dir, 0o600, config.OS)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	next := "window = 30\nwait-for-interfaces = yes\ncommand-timeout = 5\nlog-format = json\n"
	logs := &syncBuffer{}
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	d := runDaemon(t, Options{
		Config: conf(""),
		Reload: func() (*config.Config, error) { return conf(next), nil },
		Capture: func(*config.Config) (sniff.Capture, error) {
			return &chanCapture{run: func(ctx context.Context, _ func(*sniff.Packet)) error { <-ctx.Done(); return nil }}, nil
		},
		Backend: func(*config.Config) (firewall.Backend, error) { return fw, nil },
		Log:     slog.New(slog.NewTextHandler(logs, nil)),
	})
	s, err := d.ReloadSummary()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(s, "need a restart (old values kept): wait-for-interfaces, command-timeout, log-format") {
		t.Errorf("summary: %s", s)
	}
	c := d.Config()
	if c.Window != 30 || c.WaitInterfaces || c.CommandTimeout != 0 || c.LogFormat != "text" {
		t.Errorf("after reload: window %d, wait-for-interfaces %v, command-timeout %v, log-format %s", c.Window, c.WaitInterfaces, c.CommandTimeout, c.LogFormat)
	}
	for _, k := range []string{"wait-for-interfaces", "command-timeout", "log-format"} {
		if !strings.Contains(logs.String(), `configuration change needs a restart; keeping the old value" key=`+k) {
			t.Errorf("no warning for %s:\n%s", k, logs)
		}
	}
}
