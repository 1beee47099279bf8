package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExitCodes checks the documented exit statuses: 0 done, 1 not
// confirmed or the network failed, 2 bad input or configuration.
func TestExitCodes(t *testing.T) {
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg) // the profile store follows the process's environment
	t.Setenv("HOME", cfg)
	t.Setenv("CIPHERKNOCK_KEY", "")
	getenv := os.Getenv
	uri := "cipherknock://127.0.0.1/?realm=example&user=7&key=ck-key-aebagbafaydqqcikbmga2dqpcaireeyuculbogazdinryhi6d4qpdqzgiy&port=22&proto=tcp&dur=60&base=20480&name=lo"
	var out, errb bytes.Buffer
	if code := run([]string{"profile", "import", "-"}, strings.NewReader(uri), &out, &errb, getenv); code != 0 {
		t.Fatalf("import: %d %s", code, errb.String())
	}
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"knock", "lo", "--no-confirm"}, exitOK},
		{[]string{"version"}, exitOK},
		{[]string{"knock", "lo", "--port", "1", "--wait", "100ms", "--retries", "0"}, exitUnconfirmed},
		{[]string{"knock", "lo", "-6", "--no-confirm"}, exitUnconfirmed},
		{[]string{"knock", "nope"}, exitUsage},
		{[]string{"knock", "lo", "--port", "0x"}, exitUsage},
		{[]string{"knock", "lo", "--address", "nowhere"}, exitUsage},
		{[]string{"profile", "show", "nope"}, exitUsage},
		{[]string{"profile", "import", "cipherknock://x"}, exitUsage},
		{[]string{"keygen", "--host", "h", "--realm", "r r"}, exitUsage},
		{[]string{"frobnicate"}, exitUsage},
	}
	for _, tt := range tests {
		out.Reset()
		errb.Reset()
		if code := run(tt.args, strings.NewReader(""), &out, &errb, getenv); code != tt.want {
			t.Errorf("%q: exit %d, want %d (%s)", tt.args, code, tt.want, errb.String())
		}
	}
	os.Chmod(filepath.Join(cfg, "cipherknock", "lo.profile"), 0o640)
	if code := run([]string{"knock", "lo"}, strings.NewReader(""), &out, &errb, getenv); code != exitUsage {
		t.Errorf("knock with a 0640 profile: exit %d, want %d", code, exitUsage)
	}
}
