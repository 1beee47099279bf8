package main

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/crypto"
)

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

// TestCommandBackendFromConfig: the command backend is built from the
// file's templates (config.CommandConfig); one that needs a shell is
// refused by the configuration itself, at its line, before any backend is
// built.
func TestCommandBackendFromConfig(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	cfg := parse(t, "firewall = command\ncommand-open = true {addr} \"{proto} port\"\ncommand-close = true {addr}\ncommand-timeout = 3")
	b, err := newBackend(cfg, log)
	if err != nil || b.Name() != "command" {
		t.Fatalf("%v %v", b, err)
	}
	conf := "[daemon]\nrealm = r\nfirewall = command\ncommand-open = sh -c \"nft add {addr}\"\ncommand-close = true\n[user a]\nindex = 0\nkey-file = a.key\nports = tcp/22\n"
	if _, err := config.Parse("t.conf", []byte(conf), t.TempDir(), 0o600, config.OS); err == nil || !strings.Contains(err.Error(), "t.conf:4: command-open: sh is a shell") {
		t.Errorf("shell template: %v", err)
	}
}
