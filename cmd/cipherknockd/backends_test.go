package main

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/ports"
)

// TestSpanProtected: the knock span is closed for both transports next to
// the users' ports (SPEC.md §11: the receiver never answers on the span).
func TestSpanProtected(t *testing.T) {
	sp, err := encoding.NewSpan(40000)
	if err != nil {
		t.Fatal(err)
	}
	got := spanProtect([]ports.Range{{Proto: ports.UDP, From: 51820, To: 51820}, {Proto: ports.TCP, From: 22, To: 22}}, sp)
	want := []ports.Range{
		{Proto: ports.TCP, From: 22, To: 22},
		{Proto: ports.TCP, From: 40000, To: 50239},
		{Proto: ports.UDP, From: 40000, To: 50239},
		{Proto: ports.UDP, From: 51820, To: 51820},
	}
	if len(got) != len(want) {
		t.Fatalf("%+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
}

func parse(t *testing.T, daemon string) *config.Config {
	t.Helper()
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	conf := "[daemon]\nrealm = r\nstate-dir = " + t.TempDir() + "\n" + daemon +
		"\n[user a]\nindex = 0\nkey = " + key.Encode() + "\nports = tcp/22\n"
	cfg, err := config.Parse("t.conf", []byte(conf), t.TempDir(), 0o600, config.OS)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestCommandBackendFromConfig: the command backend gets the templates as
// the file split them; one that needs a shell is refused by the
// configuration itself, at its line, before any backend is built.
func TestCommandBackendFromConfig(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	cfg := parse(t, "firewall = command\ncommand-open = true {addr} \"{proto} port\"\ncommand-close = true {addr}\ncommand-timeout = 3")
	cc := commandConfig(cfg, log)
	if cc.JournalPath != filepath.Join(cfg.StateDir, CommandJournal) || cc.Timeout.Seconds() != 3 ||
		strings.Join(cc.Open, "|") != "true|{addr}|{proto} port" {
		t.Errorf("%+v", cc)
	}
	b, err := newBackend(cfg, log)
	if err != nil || b.Name() != "command" {
		t.Fatalf("%v %v", b, err)
	}
	conf := "[daemon]\nrealm = r\nfirewall = command\ncommand-open = sh -c \"nft add {addr}\"\ncommand-close = true\n[user a]\nindex = 0\nkey-file = a.key\nports = tcp/22\n"
	if _, err := config.Parse("t.conf", []byte(conf), t.TempDir(), 0o600, config.OS); err == nil || !strings.Contains(err.Error(), "t.conf:4: command-open: sh is a shell") {
		t.Errorf("shell template: %v", err)
	}
}
