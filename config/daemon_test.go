package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
)

// TestDaemonKeyErrors: the [daemon] checks that no testdata file covers,
// each reported at its line.
func TestDaemonKeyErrors(t *testing.T) {
	rk, err := crypto.GenerateRealmKey()
	if err != nil {
		t.Fatal(err)
	}
	for daemon, want := range map[string]string{
		"realm-key = ck-realm-nonsense\n":                                                  "3: realm-key: ",
		"realm-key-file = garbage.key\n":                                                   `3: realm-key-file "garbage.key": `,
		"realm-key-file = missing.key\n":                                                   `3: realm-key-file "missing.key": no such file`,
		"realm-key-file = open.key\n":                                                      `3: realm-key-file "open.key": group or others may access it (mode 0644)`,
		"realm-key-file = \n":                                                              "3: realm-key-file: empty path",
		"realm-key = " + rk.Encode() + "\nrealm-key-file = realm.key\n":                    "4: realm-key and realm-key-file are exclusive (realm-key is on line 3)",
		"firewall = command\ncommand-open = true\ncommand-drops = yes\n":                   "1: firewall = command needs command-open and command-close",
		"firewall = command\ncapture = nflog\ncommand-open = true\ncommand-close = true\n": "4: capture = nflog needs the daemon's own firewall objects",
		"capture = pcap\n":                                                                 `3: capture: "pcap" is not one of afpacket, nflog, log`,
		"nflog-group = 0\n":                                                                "3: nflog-group: 0 is outside 1..65535",
		"nflog-group = x\n":                                                                `3: nflog-group: "x" is not a number`,
		"log-prefix = a b\n":                                                               `3: log-prefix: "a b" is not 1 to`,
		"log-level = loud\n":                                                               `3: log-level: "loud" is not debug, info, warn or error`,
		"firewall-name = a/b\n":                                                            "3: firewall-name: ",
		"firewall-check-interval = 61\n":                                                   "3: firewall-check-interval: 61 seconds is outside 1..60",
		"command-timeout = 0\n":                                                            "3: command-timeout: 0 seconds is outside 1..300",
		"span-base = 99999\n":                                                              "3: span-base: ",
		"reject-log-interval = 1h1s\n":                                                     `3: reject-log-interval: "1h1s" is outside 1..3600 seconds`,
		"state-dir =\n":                                                                    "3: state-dir: empty path",
		"trigger-max-mappings = 1\n":                                                       "3: trigger-max-mappings: 1 is outside 16..1048576",
		"assembly-timeout = 61\n":                                                          "3: assembly-timeout: 61 seconds is outside 1..60",
	} {
		got := errorsOf(t, minimal(daemon))
		if len(got) == 0 || !strings.HasPrefix(got[0], want) {
			t.Errorf("%q: %q, want %s...", daemon, got, want)
		}
	}
}

// TestDaemonKeys: values that parse land in the options, and the realm
// key, inline or from a file, reaches the opener.
func TestDaemonKeys(t *testing.T) {
	rk, err := crypto.GenerateRealmKey()
	if err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, minimal("realm-key = "+rk.Encode()+"\ncapture = log\nlog-source = -\nlog-prefix = ck:\nnflog-group = 7\nwait-for-interfaces = yes\n"+
		"firewall-owner = no\nfirewall-check-interval = 5\ncommand-open6 = true\ncommand-close6 = true {addr}\nstate-dir = rel/state\ncontrol-socket = /run/x.sock\n"))
	if c.RealmKey == nil || *c.RealmKey != rk || c.Capture != "log" || c.LogSource != "-" || c.LogPrefix != "ck:" || c.NFLogGroup != 7 ||
		!c.WaitInterfaces || !c.FirewallNoOwner || c.FirewallCheck.Seconds() != 5 || len(c.CommandClose6) != 2 || c.StateDir != "rel/state" || c.ControlSocket != "/run/x.sock" {
		t.Errorf("%+v", c)
	}
	o, users, err := c.Opener()
	if err != nil || o == nil || len(users) != 1 || users[0].Name != "alice" {
		t.Errorf("Opener: %v %v %v", o, users, err)
	}
	c = mustParse(t, minimal("realm-key-file = realm.key\nlog-source = /var/log/kern.log\n"))
	if c.RealmKey == nil || *c.RealmKey != testRealmKey || c.LogSource != "/var/log/kern.log" {
		t.Errorf("realm-key-file: %+v", c)
	}
	c.Realm = "bad realm"
	if _, _, err := c.Opener(); err == nil {
		t.Error("Opener with a bad realm")
	}
}

// TestLoad reads a real file: relative key files are taken from its
// directory, through the permission checks of CheckSafe.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	key, _ := crypto.GenerateKey()
	if err := os.WriteFile(filepath.Join(dir, "alice.key"), []byte(key.Encode()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ck.conf")
	if err := os.WriteFile(path, []byte(minimal("")), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.File != path || c.Users[0].Key != key {
		t.Errorf("%+v", c)
	}
	if _, err := Load(filepath.Join(dir, "missing.conf")); err == nil || !strings.Contains(err.Error(), "missing.conf:0: cannot read: no such file") {
		t.Errorf("missing: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dir.key"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "dir.key"))
	os.Mkdir(filepath.Join(dir, "dir.key"), 0o700)
	os.WriteFile(path, []byte(strings.Replace(minimal(""), "alice.key", "dir.key", 1)), 0o600)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory as key file: %v", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "ck.conf:0: ") {
		t.Errorf("world-writable file: %v", err)
	}
}
