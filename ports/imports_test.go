package ports_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/cipherknock/cipherknock/"

// TestLayering checks the import rules this package exists for, with the
// go command's own view of the build (go list): ports imports nothing of
// the module; the firewall and the trigger engine never reach the cipher,
// and the capture imports it only through encoding, whose assembler reads
// the knock header (SPEC.md §10.2), never for a protocol; the client never
// reaches capture or firewall code, nor the daemon's configuration;
// policy is the decision alone.
func TestLayering(t *testing.T) {
	list := func(pkg, format string) []string {
		t.Helper()
		out, err := exec.Command("go", "list", "-f", format, module+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	deps := func(pkg string) []string { return list(pkg, `{{join .Deps "\n"}}`) }
	for pkg, banned := range map[string][]string{
		"ports":           {"crypto", "encoding", "firewall", "sniff", "trigger", "policy", "config"},
		"firewall":        {"crypto", "sniff", "policy", "config"},
		"sniff":           {"firewall", "policy", "config"},
		"trigger":         {"crypto", "sniff", "policy", "config"},
		"policy":          {"firewall", "trigger", "sniff", "config"},
		"profile":         {"config", "firewall", "sniff"},
		"cmd/cipherknock": {"sniff", "firewall", "trigger", "daemon", "policy", "config"},
	} {
		ds := deps(pkg)
		for _, b := range banned {
			if slices.Contains(ds, module+b) {
				t.Errorf("%s imports %s", pkg, b)
			}
		}
	}
	if imps := list("sniff", `{{join .Imports "\n"}}`); slices.Contains(imps, module+"crypto") {
		t.Error("sniff imports crypto")
	}
	if !slices.Contains(deps("crypto"), module+"ports") {
		t.Error("crypto does not import ports") // the list above would pass vacuously on a broken module path
	}
}
