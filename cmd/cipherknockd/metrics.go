package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/cipherknock/cipherknock/daemon"
	"github.com/cipherknock/cipherknock/internal/version"
)

// writePrometheus writes st in the Prometheus text exposition format
// (version 0.0.4), for node_exporter's textfile collector or a scrape of
// run --metrics-listen. Every rejection class is listed, at 0 too, so that
// rates work from the first scrape.
func writePrometheus(w io.Writer, st *daemon.Status) error {
	bw := bufio.NewWriter(w)
	metric := func(name, typ, help string) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	metric("cipherknock_info", "gauge", "The daemon's realm, firewall backend and version.")
	fmt.Fprintf(bw, "cipherknock_info{realm=%s,backend=%s,version=%s} 1\n", label(st.Realm), label(st.Backend), label(version.String()))
	metric("cipherknock_knocks_accepted_total", "counter", "Knocks accepted and carried out.")
	fmt.Fprintf(bw, "cipherknock_knocks_accepted_total %d\n", st.Accepted)
	metric("cipherknock_knocks_repeated_total", "counter", "Repeated passes of knocks already accepted (--repeat), ignored.")
	fmt.Fprintf(bw, "cipherknock_knocks_repeated_total %d\n", st.Duplicates)
	metric("cipherknock_knocks_rejected_total", "counter", "Knocks rejected, by class.")
	classes := daemon.Classes()
	seen := map[string]bool{}
	for _, c := range classes {
		seen[c] = true
	}
	for c := range st.Rejected { // a class this build does not know
		if !seen[c] {
			classes = append(classes, c)
		}
	}
	sort.Strings(classes)
	for _, c := range classes {
		fmt.Fprintf(bw, "cipherknock_knocks_rejected_total{class=%s} %d\n", label(c), st.Rejected[c])
	}
	metric("cipherknock_grants_open", "gauge", "Grants open in the firewall.")
	fmt.Fprintf(bw, "cipherknock_grants_open %d\n", len(st.Grants))
	metric("cipherknock_sources_tracked", "gauge", "Knocks being assembled.")
	fmt.Fprintf(bw, "cipherknock_sources_tracked %d\n", st.Sources)
	metric("cipherknock_sources_capacity", "gauge", "Knocks that can be assembled at once (max-sources).")
	fmt.Fprintf(bw, "cipherknock_sources_capacity %d\n", st.SourceCap)
	metric("cipherknock_source_evictions_total", "counter", "Knocks in assembly evicted to make room for new ones.")
	fmt.Fprintf(bw, "cipherknock_source_evictions_total %d\n", st.Evictions)
	metric("cipherknock_replay_entries", "gauge", "Accepted knocks remembered by the replay cache.")
	fmt.Fprintf(bw, "cipherknock_replay_entries %d\n", st.ReplayLen)
	metric("cipherknock_replay_capacity", "gauge", "The replay cache's size (replay-cache-size).")
	fmt.Fprintf(bw, "cipherknock_replay_capacity %d\n", st.ReplayCap)
	if c := st.Capture; c != nil {
		metric("cipherknock_capture_packets_matched_total", "counter", "Packets that matched the kernel filter.")
		fmt.Fprintf(bw, "cipherknock_capture_packets_matched_total %d\n", c.Matched)
		metric("cipherknock_capture_drops_total", "counter", "Packets the kernel dropped before the daemon read them.")
		fmt.Fprintf(bw, "cipherknock_capture_drops_total %d\n", c.Dropped)
		metric("cipherknock_capture_packets_delivered_total", "counter", "Packets delivered to the assembler.")
		fmt.Fprintf(bw, "cipherknock_capture_packets_delivered_total %d\n", c.Delivered)
		metric("cipherknock_capture_packets_rejected_total", "counter", "Packets read but not knock packets.")
		fmt.Fprintf(bw, "cipherknock_capture_packets_rejected_total %d\n", c.Rejected)
		metric("cipherknock_capture_malformed_total", "counter", "NFLOG messages or log lines that could not be read (capture = nflog or log).")
		fmt.Fprintf(bw, "cipherknock_capture_malformed_total %d\n", c.Malformed)
	}
	if st.TriggersOpened > 0 || st.TriggersBusy > 0 {
		metric("cipherknock_triggers_opened_total", "counter", "Doors opened by port triggers.")
		fmt.Fprintf(bw, "cipherknock_triggers_opened_total %d\n", st.TriggersOpened)
		metric("cipherknock_triggers_busy_total", "counter", "Trigger firings refused (conflict or no room).")
		fmt.Fprintf(bw, "cipherknock_triggers_busy_total %d\n", st.TriggersBusy)
	}
	metric("cipherknock_firewall_repairs_total", "counter", "Times the daemon found its firewall objects removed or changed (a ruleset flush, say) and restored them.")
	fmt.Fprintf(bw, "cipherknock_firewall_repairs_total %d\n", st.FirewallRepairs)
	metric("cipherknock_firewall_owned", "gauge", "1 when the kernel itself keeps others from removing the firewall objects (nftables table flag owner), else 0.")
	owned := 0
	if st.FirewallOwned {
		owned = 1
	}
	fmt.Fprintf(bw, "cipherknock_firewall_owned %d\n", owned)
	metric("cipherknock_status_ok", "gauge", "1 when the grants could be listed from the firewall, else 0.")
	ok := 1
	if st.GrantsError != "" {
		ok = 0
	}
	fmt.Fprintf(bw, "cipherknock_status_ok %d\n", ok)
	return bw.Flush()
}

// label quotes a label value as the exposition format wants.
func label(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// serveMetrics serves the daemon's counters at http://addr/metrics until
// ctx ends. The listener is opened before it returns, so that a bad
// address fails the start.
func serveMetrics(ctx context.Context, addr string, d *daemon.Daemon, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		sctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		st := d.Status(sctx)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		writePrometheus(w, &st)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 15 * time.Second, MaxHeaderBytes: 8 << 10}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener failed", "addr", addr, "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String(), "path", "/metrics")
	return nil
}
