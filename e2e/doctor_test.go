package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/internal/nstest"
)

// doctorReport is the part of "cipherknockd doctor --json" the test reads.
type doctorReport struct {
	Capabilities []struct {
		Name string
		Have bool
	}
	Interfaces []struct {
		Name    string
		Addrs   []string
		Capture bool
	}
	NFTables, IPTables struct{ OK bool }
	Backend, Reason    string
	Clock              struct{ Detail string }
}

// TestDoctor runs cipherknockd doctor in a namespace, as root and as an
// unprivileged user: both exit 0 with a report; root has the
// capabilities and a working firewall, the other is told what it lacks.
func TestDoctor(t *testing.T) {
	requireTools(t)
	nstest.RequireTool(t, "nft", "setpriv")
	ns := nstest.New(t, "doc")
	peer := nstest.New(t, "dop")
	l, _ := nstest.Connect(ns, peer, 1)

	var r doctorReport
	out := ns.Run(daemonBin, "doctor", "--json")
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, c := range r.Capabilities {
		if !c.Have {
			t.Errorf("root lacks %s", c.Name)
		}
	}
	seen := false
	for _, i := range r.Interfaces {
		switch i.Name {
		case l.Name:
			seen = true
			if !i.Capture || !strings.Contains(strings.Join(i.Addrs, " "), l.Addr4.String()+"/24") {
				t.Errorf("veth: %+v", i)
			}
		case "lo":
			if i.Capture {
				t.Errorf("loopback captured by default")
			}
		}
	}
	if !seen || !r.NFTables.OK || !r.IPTables.OK || r.Backend != "nftables" || r.Clock.Detail == "" {
		t.Errorf("report:\n%s", out)
	}
	if rs := ns.Run("nft", "list", "ruleset"); strings.TrimSpace(rs) != "" {
		t.Errorf("doctor left a ruleset behind:\n%s", rs)
	}

	// With a configuration: the interfaces it names (and loopback) are
	// the ones captured, and its firewall is the one checked.
	dir0 := t.TempDir()
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir0, "d.conf")
	os.WriteFile(conf, []byte("[daemon]\nrealm = r\nfirewall = iptables\nloopback = true\ninterfaces = lo\n[user a]\nindex = 0\nkey = "+key.Encode()+"\nports = tcp/22\n"), 0o600)
	out = ns.Run(daemonBin, "doctor", "--json", "-c", conf)
	r = doctorReport{}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, i := range r.Interfaces {
		if i.Capture != (i.Name == "lo") {
			t.Errorf("with interfaces = lo: %+v", i)
		}
	}
	if r.Backend != "iptables" {
		t.Errorf("with firewall = iptables:\n%s", out)
	}

	// Unprivileged: a copy of the binary that nobody may run.
	cmd := ns.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", unprivilegedCopy(t), "doctor")
	text, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("doctor as nobody: %v\n%s", err, text)
	}
	for _, want := range []string{"CAP_NET_RAW    NO", "CAP_NET_ADMIN  NO", "the daemon needs both", l.Name, "nftables:  NO", "firewall = auto: none", "clock:"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("unprivileged report lacks %q:\n%s", want, text)
		}
	}
	t.Logf("unprivileged report:\n%s", text)
}
