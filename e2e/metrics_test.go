package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMetrics knocks once, sends a knock for an unknown user and one under
// a wrong key, and reads the counters three ways: status --format
// prometheus (for node_exporter's textfile collector), the daemon's own
// listener (run --metrics-listen), and status --json. At log-level =
// debug, each rejection is logged when it happens.
func TestMetrics(t *testing.T) {
	w := newWorld(t, "log-level = debug")
	// Restart the daemon with a metrics listener on the server's loopback.
	w.stopDaemon()
	const metricsAddr = "127.0.0.1:9477"
	logFile := filepath.Join(w.dir, "metrics-daemon.log")
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := w.server.Command(daemonBin, "run", "-c", w.conf, "--metrics-listen", metricsAddr)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &daemonProc{cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	w.d = p
	w.waitLog("cipherknockd running", "serving metrics", "addr="+metricsAddr)

	w.clientKnock(w.client, w.srvAddr, 20*time.Second)
	w.mustOpen(w.client, w.srvAddr)
	unknown := w.spec(servicePort, 10)
	unknown.index = userIndex + 7
	send(t, w.client, w.srvAddr, unknown.ports(t))
	w.waitLog(`msg="knock rejected" class="unknown user or wrong realm key" source=` + w.clientAddr.String())
	badKey := w.spec(servicePort, 10)
	badKey.key[0] ^= 1
	send(t, w.client, w.srvAddr, badKey.ports(t))
	w.waitLog(`msg="knock rejected" class="bad tag" source=` + w.clientAddr.String())

	// A host that flushes its firewall: the daemon restores its objects,
	// and the repair is counted.
	w.server.Run("iptables", "-F")
	if !poll(15*time.Second, func() bool {
		var st struct {
			Repairs uint64 `json:"firewall_repairs"`
		}
		out, err := w.server.Try(daemonBin, "status", "--json", "-c", w.conf)
		return err == nil && json.Unmarshal([]byte(out), &st) == nil && st.Repairs >= 1
	}) {
		t.Fatalf("no repair after iptables -F; log:\n%s", w.logText())
	}

	want := []string{
		`cipherknock_firewall_owned 0`,
		`cipherknock_capture_malformed_total 0`,
		`cipherknock_knocks_accepted_total 1`,
		`cipherknock_knocks_rejected_total{class="unknown user or wrong realm key"} 1`,
		`cipherknock_knocks_rejected_total{class="bad tag"} 1`,
		`cipherknock_knocks_rejected_total{class="stale"} 0`,
		`cipherknock_grants_open 1`,
		`cipherknock_source_evictions_total 0`,
		`cipherknock_capture_drops_total 0`,
		`cipherknock_status_ok 1`,
		`cipherknock_info{realm="e2e",backend="iptables",version="`,
	}
	check := func(how, text string) {
		t.Helper()
		if !regexp.MustCompile(`(?m)^cipherknock_firewall_repairs_total [1-9][0-9]*$`).MatchString(text) {
			t.Errorf("%s: the repair after iptables -F is not counted:\n%s", how, text)
		}
		for _, s := range want {
			if !strings.Contains(text, s) {
				t.Errorf("%s: no %q in\n%s", how, s, text)
			}
		}
		// Every sample line is NAME{LABELS} VALUE, under its TYPE.
		sample := regexp.MustCompile(`^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9]+$`)
		typed := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
			if strings.HasPrefix(l, "# TYPE ") {
				typed[strings.Fields(l)[2]] = true
				continue
			}
			if strings.HasPrefix(l, "# HELP ") {
				continue
			}
			if !sample.MatchString(l) {
				t.Errorf("%s: not a sample line: %q", how, l)
				continue
			}
			if name := regexp.MustCompile(`^[a-z_]+`).FindString(l); !typed[name] {
				t.Errorf("%s: %s has no TYPE line before it", how, name)
			}
		}
	}
	check("status --format prometheus", w.server.Run(daemonBin, "status", "-c", w.conf, "--format", "prometheus"))

	var scraped string
	err = w.server.Do(func() error {
		c, err := net.DialTimeout("tcp", metricsAddr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n", metricsAddr)
		b, err := io.ReadAll(c)
		scraped = string(b)
		return err
	})
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	head, body, _ := strings.Cut(scraped, "\r\n\r\n")
	if !strings.HasPrefix(head, "HTTP/1.0 200") || !strings.Contains(head, "Content-Type: text/plain; version=0.0.4") {
		t.Errorf("scrape answered:\n%s", head)
	}
	check("--metrics-listen", body)
	// The listener is on the loopback only: the client cannot reach it.
	if _, err := w.client.Fetch(w.srvAddr.String()+":9477", time.Second); err == nil {
		t.Error("the metrics listener answered from outside its address")
	}

	// status --json: one line, and grants and rejections are never null.
	out := w.server.Run(daemonBin, "status", "-c", w.conf, "--json")
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("status --json is not one line:\n%s", out)
	}
	var st struct {
		Grants   []map[string]any  `json:"grants"`
		Rejected map[string]uint64 `json:"rejected"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Grants) != 1 || st.Rejected["unknown user or wrong realm key"] != 1 {
		t.Errorf("status --json: %s", out)
	}
}

// TestStatusJSONEmpty checks that with no grant and no rejection, status
// --json says [] and {}, not null.
func TestStatusJSONEmpty(t *testing.T) {
	w := newWorld(t, "")
	out := w.server.Run(daemonBin, "status", "-c", w.conf, "--json")
	if !strings.Contains(out, `"grants":[]`) || !strings.Contains(out, `"rejected":{}`) {
		t.Errorf("status --json:\n%s", out)
	}
}
