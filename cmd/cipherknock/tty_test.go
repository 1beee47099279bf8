package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/profile"
)

// TestTerminalProgress runs knock on a pseudo-terminal (util-linux script)
// and checks that it shows a live progress line that it clears before the
// error.
func TestTerminalProgress(t *testing.T) {
	scriptCmd, err := exec.LookPath("script")
	if err != nil {
		nstest.Skip(t, "needs script from util-linux (apt-get install bsdutils), for a pseudo-terminal")
	}
	bin := buildBinary(t)
	cfg := t.TempDir()
	k, _ := crypto.GenerateKey()
	p := profile.New("127.0.0.1", "tty", 0, k)
	p.Name = "lo"
	p.Port = 1 // nothing listens on tcp/1 of the loopback
	if err := (&profile.Store{Dir: filepath.Join(cfg, "cipherknock")}).Save(p, false); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(scriptCmd, "-qec", bin+" knock lo --wait 400ms --retries 0", "/dev/null")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+cfg, "TERM=xterm", "CIPHERKNOCK_KEY=")
	out, _ := cmd.CombinedOutput()
	s := string(out)
	for _, want := range []string{
		"\r\x1b[Kknocked on 127.0.0.1 with 24 udp packets (ports 20480-30719)",
		"; waiting for an answer 0.",
		"\r\x1b[Kcipherknock: error: tcp/1 on 127.0.0.1 did not answer after 1 knock",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, s)
		}
	}
}
