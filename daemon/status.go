package daemon

// The status: one typed value, made by Daemon.Status, encoded to JSON
// once at the control socket and decoded into the same type by the
// command line, which renders it as text, JSON or Prometheus samples.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/internal/version"
	"github.com/cipherknock/cipherknock/ports"
)

// Status is what the control socket's status command returns. Its JSON
// keys are the ones cipherknockd(8) documents; Grants is never null and
// Rejected never null once made by Daemon.Status.
type Status struct {
	Backend    string        `json:"backend"`
	Realm      string        `json:"realm"`
	Grants     []GrantStatus `json:"grants"`
	Sources    int           `json:"sources"`
	SourceCap  int           `json:"source_capacity"`
	TableBytes int           `json:"table_bytes"`
	Evictions  uint64        `json:"evictions"`
	ReplayLen  int           `json:"replay_entries"`
	ReplayCap  int           `json:"replay_capacity"`
	Accepted   uint64        `json:"accepted"`
	Duplicates uint64        `json:"duplicates"`
	// Rejected counts the rejected knocks by class name (Classes), the
	// classes with none left out.
	Rejected map[string]uint64 `json:"rejected"`
	// GrantsError says why the grants could not all be listed.
	GrantsError string `json:"grants_error,omitempty"`
	// FirewallRepairs counts the times the daemon found its firewall
	// objects removed or changed by someone else and restored them;
	// FirewallOwned says whether the kernel keeps others from doing it
	// (nftables table flag owner), and FirewallNote why not.
	FirewallRepairs uint64 `json:"firewall_repairs"`
	FirewallOwned   bool   `json:"firewall_owned"`
	FirewallNote    string `json:"firewall_note,omitempty"`
	// Port triggering (trigger.go).
	TriggersOpened uint64 `json:"triggers_opened,omitempty"`
	TriggersBusy   uint64 `json:"triggers_busy,omitempty"`
	// The capture's counters (sniff.Stats).
	Capture *CaptureStats `json:"capture,omitempty"`
}

// CaptureStats are the capture's counters: packets that passed the kernel
// filter, those the kernel dropped because the reader fell behind (a flood
// larger than the machine), and those read, delivered and rejected by the
// user-space re-check; and for the captures that read the firewall's log,
// what they could not read.
type CaptureStats struct {
	Matched   uint64 `json:"matched"`
	Dropped   uint64 `json:"dropped"`
	Read      uint64 `json:"read"`
	Delivered uint64 `json:"delivered"`
	Rejected  uint64 `json:"rejected"`
	// Malformed: NFLOG messages or log lines that could not be read.
	Malformed uint64 `json:"malformed"`
}

// Grant kinds in the status listing.
const (
	KindKnock   = "knock"
	KindTrigger = "trigger"
)

// GrantStatus is one open grant.
type GrantStatus struct {
	Addr  netip.Addr
	Proto ports.Proto
	Port  uint16
	Left  time.Duration // as the kernel reports it
	User  string        // the knock's user; "" for a trigger's grant
	// Kind is KindKnock or KindTrigger ("": made before the daemon
	// started); a trigger's grant names the trigger, and on a NAT
	// gateway the inside host and port it leads to.
	Kind    string
	Trigger string
	Inside  netip.AddrPort
}

// grantJSON is GrantStatus on the wire.
type grantJSON struct {
	Addr    netip.Addr `json:"addr"`
	Proto   string     `json:"proto"`
	Port    uint16     `json:"port"`
	Left    float64    `json:"seconds_left"`
	User    string     `json:"user,omitempty"`
	Kind    string     `json:"kind,omitempty"`
	Trigger string     `json:"trigger,omitempty"`
	Inside  string     `json:"inside,omitempty"`
}

// MarshalJSON writes the protocol as tcp or udp, the time left in
// seconds, and leaves out what is unknown. It escapes no HTML: the
// encoder that calls it decides.
func (g GrantStatus) MarshalJSON() ([]byte, error) {
	j := grantJSON{Addr: g.Addr, Proto: g.Proto.String(), Port: g.Port, Left: g.Left.Seconds(),
		User: g.User, Kind: g.Kind, Trigger: g.Trigger}
	if g.Inside.IsValid() {
		j.Inside = g.Inside.String()
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(j)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), err
}

// UnmarshalJSON reads what MarshalJSON writes.
func (g *GrantStatus) UnmarshalJSON(b []byte) error {
	var j grantJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var p ports.Proto
	switch j.Proto {
	case ports.TCP.String():
		p = ports.TCP
	case ports.UDP.String():
		p = ports.UDP
	default:
		return fmt.Errorf("grant: unknown protocol %q", j.Proto)
	}
	var inside netip.AddrPort
	if j.Inside != "" {
		var err error
		if inside, err = netip.ParseAddrPort(j.Inside); err != nil {
			return fmt.Errorf("grant: inside: %w", err)
		}
	}
	*g = GrantStatus{Addr: j.Addr, Proto: p, Port: j.Port, Left: time.Duration(j.Left * float64(time.Second)),
		User: j.User, Kind: j.Kind, Trigger: j.Trigger, Inside: inside}
	return nil
}

// Who says who made a grant, for the status listing: "knock USER",
// "trigger NAME" (with "-> INSIDE" on a NAT gateway), or "-" when the
// daemon does not know (granted before it last started).
func (g GrantStatus) Who() string {
	switch {
	case g.Kind == KindTrigger && g.Inside.IsValid():
		return fmt.Sprintf("trigger %s -> %s", orDash(g.Trigger), g.Inside)
	case g.Kind == KindTrigger:
		return "trigger " + orDash(g.Trigger)
	case g.User != "":
		return "knock " + g.User
	}
	return "-"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Status reports the grants in the kernel and the daemon's counters.
func (d *Daemon) Status(ctx context.Context) Status {
	fw := d.backend()
	s := Status{Backend: fw.Name(), Realm: d.Config().Realm, Grants: []GrantStatus{}}
	s.FirewallRepairs = d.sup.repairs.Load()
	if sv, ok := fw.(firewall.Supervised); ok {
		s.FirewallOwned, s.FirewallNote = sv.Protected()
	}
	var errs []error
	gs, err := fw.List(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	d.owners.Lock()
	for _, g := range gs {
		s.Grants = append(s.Grants, GrantStatus{
			Addr: g.Addr, Proto: g.Proto, Port: g.Port, Left: g.Timeout,
			User: d.owners.m[grantKey{g.Addr.Unmap(), g.Proto, g.Port}].user,
		})
	}
	d.owners.Unlock()
	d.in.Lock()
	t := d.in.table
	s.Sources, s.SourceCap, s.TableBytes, s.Evictions = t.Live, t.Cap(), t.Bytes(), t.Evictions
	d.in.Unlock()
	s.ReplayLen, s.ReplayCap = d.replay.Len(), d.replay.Cap()
	if c := d.capture.Load(); c != nil {
		st := (*c).Stats()
		s.Capture = &CaptureStats{Matched: st.Matched, Dropped: st.Dropped, Read: st.Read,
			Delivered: st.Delivered, Rejected: st.Rejected, Malformed: st.Malformed}
	}
	s.Accepted = d.counters.accepted.Load()
	s.Duplicates = d.counters.duplicates.Load()
	s.Rejected = d.rej.totals()
	if err := d.triggerStatus(ctx, &s); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		s.GrantsError = errors.Join(errs...).Error()
	}
	return s
}

// WriteText writes the status for an operator: a summary line, the
// grants by time left, then the counters.
func (s *Status) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "realm %s, firewall %s, %d grants\n", s.Realm, s.Backend, len(s.Grants))
	if s.FirewallOwned {
		fmt.Fprintf(bw, "firewall objects: owned by this daemon in the kernel (a ruleset flush leaves them); %d repairs\n", s.FirewallRepairs)
	} else if s.FirewallNote != "" {
		fmt.Fprintf(bw, "firewall objects: %s; %d repairs\n", s.FirewallNote, s.FirewallRepairs)
	}
	if s.GrantsError != "" {
		fmt.Fprintf(bw, "cannot list grants: %s\n", s.GrantsError)
	}
	if len(s.Grants) > 0 {
		gs := slices.Clone(s.Grants)
		slices.SortStableFunc(gs, func(a, b GrantStatus) int { return cmp.Compare(a.Left, b.Left) })
		tw := tabwriter.NewWriter(bw, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ADDRESS\tPORT\tLEFT\tBY")
		for _, g := range gs {
			fmt.Fprintf(tw, "%s\t%s/%d\t%s\t%s\n", g.Addr, g.Proto, g.Port, g.Left.Truncate(time.Second), g.Who())
		}
		tw.Flush()
	}
	fmt.Fprintf(bw, "sources tracked %d of %d (%d bytes), evictions %d; replay cache %d of %d; accepted %d, repeated passes %d\n",
		s.Sources, s.SourceCap, s.TableBytes, s.Evictions, s.ReplayLen, s.ReplayCap, s.Accepted, s.Duplicates)
	if c := s.Capture; c != nil {
		fmt.Fprintf(bw, "capture: %d packets matched the kernel filter, %d dropped by the kernel, %d delivered, %d rejected, %d malformed\n",
			c.Matched, c.Dropped, c.Delivered, c.Rejected, c.Malformed)
	}
	if len(s.Rejected) > 0 {
		fmt.Fprint(bw, "rejected:")
		for _, k := range sortedKeys(s.Rejected) {
			fmt.Fprintf(bw, " %s=%d", k, s.Rejected[k])
		}
		fmt.Fprintln(bw)
	}
	return bw.Flush()
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// WritePrometheus writes the status in the Prometheus text exposition
// format (version 0.0.4), for node_exporter's textfile collector or a
// scrape of run --metrics-listen. Every rejection class is listed, at 0
// too, so that rates work from the first scrape.
func (s *Status) WritePrometheus(w io.Writer) error {
	bw := bufio.NewWriter(w)
	metric := func(name, typ, help string) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	// one writes a metric that has a single, unlabelled value.
	one := func(name, typ, help string, v any) {
		metric(name, typ, help)
		fmt.Fprintf(bw, "%s %d\n", name, v)
	}
	metric("cipherknock_info", "gauge", "The daemon's realm, firewall backend and version.")
	fmt.Fprintf(bw, "cipherknock_info{realm=%s,backend=%s,version=%s} 1\n", label(s.Realm), label(s.Backend), label(version.String()))
	one("cipherknock_knocks_accepted_total", "counter", "Knocks accepted and carried out.", s.Accepted)
	one("cipherknock_knocks_repeated_total", "counter", "Repeated passes of knocks already accepted (--repeat), ignored.", s.Duplicates)
	metric("cipherknock_knocks_rejected_total", "counter", "Knocks rejected, by class.")
	classes := Classes()
	for c := range s.Rejected { // a class this build does not know
		if !slices.Contains(classes, c) {
			classes = append(classes, c)
		}
	}
	slices.Sort(classes)
	for _, c := range classes {
		fmt.Fprintf(bw, "cipherknock_knocks_rejected_total{class=%s} %d\n", label(c), s.Rejected[c])
	}
	one("cipherknock_grants_open", "gauge", "Grants open in the firewall.", len(s.Grants))
	one("cipherknock_sources_tracked", "gauge", "Knocks being assembled.", s.Sources)
	one("cipherknock_sources_capacity", "gauge", "Knocks that can be assembled at once (max-sources).", s.SourceCap)
	one("cipherknock_source_evictions_total", "counter", "Knocks in assembly evicted to make room for new ones.", s.Evictions)
	one("cipherknock_replay_entries", "gauge", "Accepted knocks remembered by the replay cache.", s.ReplayLen)
	one("cipherknock_replay_capacity", "gauge", "The replay cache's size (replay-cache-size).", s.ReplayCap)
	if c := s.Capture; c != nil {
		one("cipherknock_capture_packets_matched_total", "counter", "Packets that matched the kernel filter.", c.Matched)
		one("cipherknock_capture_drops_total", "counter", "Packets the kernel dropped before the daemon read them.", c.Dropped)
		one("cipherknock_capture_packets_delivered_total", "counter", "Packets delivered to the assembler.", c.Delivered)
		one("cipherknock_capture_packets_rejected_total", "counter", "Packets read but not knock packets.", c.Rejected)
		one("cipherknock_capture_malformed_total", "counter", "NFLOG messages or log lines that could not be read (capture = nflog or log).", c.Malformed)
	}
	if s.TriggersOpened > 0 || s.TriggersBusy > 0 {
		one("cipherknock_triggers_opened_total", "counter", "Doors opened by port triggers.", s.TriggersOpened)
		one("cipherknock_triggers_busy_total", "counter", "Trigger firings refused (conflict or no room).", s.TriggersBusy)
	}
	one("cipherknock_firewall_repairs_total", "counter", "Times the daemon found its firewall objects removed or changed (a ruleset flush, say) and restored them.", s.FirewallRepairs)
	one("cipherknock_firewall_owned", "gauge", "1 when the kernel itself keeps others from removing the firewall objects (nftables table flag owner), else 0.", b2i(s.FirewallOwned))
	one("cipherknock_status_ok", "gauge", "1 when the grants could be listed from the firewall, else 0.", b2i(s.GrantsError == ""))
	return bw.Flush()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// label quotes a label value as the exposition format wants.
func label(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
