package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/firewall"
	"github.com/cipherknock/cipherknock/internal/version"
	"github.com/cipherknock/cipherknock/ports"
)

// fullStatus has every field set, and one grant of each kind.
func fullStatus() Status {
	return Status{
		Backend: "nftables", Realm: `odd "realm"` + "\n", Sources: 2, SourceCap: 4096, TableBytes: 1 << 20, Evictions: 3,
		ReplayLen: 5, ReplayCap: 65536, Accepted: 7, Duplicates: 1,
		Rejected:    map[string]uint64{"bad tag": 2, "replay": 1},
		GrantsError: "trigger nat: list: no table",
		Grants: []GrantStatus{
			{Addr: netip.MustParseAddr("2001:db8::7"), Proto: ports.UDP, Port: 5000, Left: 29500 * time.Millisecond, User: "alice", Kind: KindKnock},
			{Addr: netip.MustParseAddr("198.51.100.9"), Proto: ports.TCP, Port: 113, Left: 3 * time.Second, Kind: KindTrigger, Trigger: "ident",
				Inside: netip.MustParseAddrPort("192.168.1.5:113")},
			{Addr: netip.MustParseAddr("198.51.100.10"), Proto: ports.TCP, Port: 22, Left: time.Minute},
		},
		FirewallRepairs: 1, FirewallOwned: true, FirewallNote: "note",
		TriggersOpened: 4, TriggersBusy: 1,
		Capture: &CaptureStats{Matched: 10, Dropped: 1, Read: 9, Delivered: 8, Rejected: 1},
	}
}

// TestStatusJSON: the typed status survives the control socket's
// encoding unchanged, and the wire keeps the keys and value forms that
// cipherknockd(8) documents and earlier releases wrote (addresses and
// protocols as text, seconds_left in seconds, unknown fields left out).
func TestStatusJSON(t *testing.T) {
	st := fullStatus()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back Status
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, st) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, st)
	}
	for _, want := range []string{
		`"grants":[{"addr":"2001:db8::7","proto":"udp","port":5000,"seconds_left":29.5,"user":"alice","kind":"knock"},` +
			`{"addr":"198.51.100.9","proto":"tcp","port":113,"seconds_left":3,"kind":"trigger","trigger":"ident","inside":"192.168.1.5:113"},` +
			`{"addr":"198.51.100.10","proto":"tcp","port":22,"seconds_left":60}]`,
		`"backend":"nftables"`, `"sources":2,"source_capacity":4096,"table_bytes":1048576,"evictions":3,"replay_entries":5,"replay_capacity":65536,"accepted":7,"duplicates":1`,
		`"rejected":{"bad tag":2,"replay":1}`, `"grants_error":"trigger nat: list: no table"`,
		`"firewall_repairs":1,"firewall_owned":true,"firewall_note":"note","triggers_opened":4,"triggers_busy":1`,
		`"capture":{"matched":10,"dropped":1,"read":9,"delivered":8,"rejected":1,"malformed":0}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}
	// Every key is in cipherknockd(8)'s list.
	man, err := os.ReadFile("../dist/man/cipherknockd.8")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(man)
	doc = strings.ReplaceAll(doc[strings.Index(doc, ".B status \\-\\-json"):strings.Index(doc, ".B check\\-config \\-\\-json")], "\\", "")
	var top map[string]json.RawMessage
	var keyed struct {
		Grants  []map[string]any `json:"grants"`
		Capture map[string]any   `json:"capture"`
	}
	if json.Unmarshal(b, &top) != nil || json.Unmarshal(b, &keyed) != nil {
		t.Fatal("not a JSON object")
	}
	keys := slices.Collect(maps.Keys(top))
	for _, m := range append(keyed.Grants, keyed.Capture) {
		keys = slices.AppendSeq(keys, maps.Keys(m))
	}
	for _, k := range keys {
		if !strings.Contains(doc, k) {
			t.Errorf("cipherknockd(8) does not name status key %q", k)
		}
	}
	// HTML escaping is the encoder's choice, for grants too.
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.Encode(GrantStatus{Addr: netip.MustParseAddr("192.0.2.1"), User: "a<b&c", Kind: KindKnock})
	if want := `{"addr":"192.0.2.1","proto":"tcp","port":0,"seconds_left":0,"user":"a<b&c","kind":"knock"}` + "\n"; out.String() != want {
		t.Errorf("unescaped: %s", out.String())
	}
	if b, _ := json.Marshal(GrantStatus{User: "a<b"}); !strings.Contains(string(b), `"user":"a\u003cb"`) {
		t.Errorf("escaped: %s", b)
	}
	for _, bad := range []string{
		`{"addr":"198.51.100.9","proto":"sctp","port":1}`,
		`{"addr":"198.51.100.9","proto":"tcp","port":1,"inside":"nowhere"}`,
		`{"addr":"not an address","proto":"tcp","port":1}`,
		`{"addr":"198.51.100.9","proto":"tcp","port":"one"}`,
	} {
		var g GrantStatus
		if err := json.Unmarshal([]byte(bad), &g); err == nil {
			t.Errorf("%s: accepted as %+v", bad, g)
		}
	}
}

// TestStatusControlSocket: what the control socket sends is decoded into
// the value the daemon made.
func TestStatusControlSocket(t *testing.T) {
	dir := t.TempDir()
	key, _ := crypto.GenerateKey()
	fw := &memBackend{grants: map[grantKey]firewall.Grant{}}
	h := start(t, dir, key, fw)
	src := netip.MustParseAddr("198.18.0.9")
	h.send(src, seal(t, "test", key, 3, openKnock(8080, 30)))
	waitFor(t, "grant", func() bool { _, ok := fw.get(src, ports.TCP, 8080); return ok })
	h.send(src, []uint16{60000}) // outside the span: not counted
	var r *Reply
	var err error
	waitFor(t, "control socket", func() bool {
		r, err = Request(filepath.Join(dir, "ctl.sock"), "status")
		return err == nil
	})
	want := h.d.Status(context.Background())
	got := r.Status
	if len(got.Grants) != 1 || len(want.Grants) != 1 {
		t.Fatalf("grants: got %+v, want %+v", got.Grants, want.Grants)
	}
	got.Grants[0].Left, want.Grants[0].Left = 0, 0 // the memory backend's time does not run
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("over the socket:\n got %+v\nwant %+v", *got, want)
	}
	if g := want.Grants[0]; g.Addr != src || g.Proto != ports.TCP || g.Port != 8080 || g.User != "alice" || g.Kind != KindKnock ||
		want.Accepted != 1 || want.Capture == nil || want.Capture.Delivered == 0 {
		t.Errorf("status %+v", want)
	}
}

// TestStatusText: the operator's listing, grants by time left, as the
// command line printed it before the status was typed.
func TestStatusText(t *testing.T) {
	st := fullStatus()
	var b bytes.Buffer
	if err := st.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `realm odd "realm"
, firewall nftables, 3 grants
firewall objects: owned by this daemon in the kernel (a ruleset flush leaves them); 1 repairs
cannot list grants: trigger nat: list: no table
ADDRESS        PORT      LEFT  BY
198.51.100.9   tcp/113   3s    trigger ident -> 192.168.1.5:113
2001:db8::7    udp/5000  29s   knock alice
198.51.100.10  tcp/22    1m0s  -
sources tracked 2 of 4096 (1048576 bytes), evictions 3; replay cache 5 of 65536; accepted 7, repeated passes 1
capture: 10 packets matched the kernel filter, 1 dropped by the kernel, 8 delivered, 1 rejected, 0 malformed
rejected: bad tag=2 replay=1
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	if st.Grants[0].Port != 5000 {
		t.Error("WriteText reordered the caller's grants")
	}
	st = Status{Realm: "r", Backend: "iptables", FirewallNote: "iptables has no owner flag", Grants: []GrantStatus{}, Rejected: map[string]uint64{}}
	b.Reset()
	st.WriteText(&b)
	if want := "realm r, firewall iptables, 0 grants\nfirewall objects: iptables has no owner flag; 0 repairs\n" +
		"sources tracked 0 of 0 (0 bytes), evictions 0; replay cache 0 of 0; accepted 0, repeated passes 0\n"; b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestStatusPrometheus: every class at 0 too, labels escaped as the
// exposition format says (backslash, double quote, newline), the capture
// and trigger samples only when there are some.
func TestStatusPrometheus(t *testing.T) {
	st := fullStatus()
	st.Rejected["a class from a newer daemon"] = 9
	var b bytes.Buffer
	if err := st.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`cipherknock_info{realm="odd \"realm\"\n",backend="nftables",version="` + version.String() + `"} 1`,
		"cipherknock_knocks_accepted_total 7\n", "cipherknock_knocks_repeated_total 1\n",
		`cipherknock_knocks_rejected_total{class="bad tag"} 2`, `cipherknock_knocks_rejected_total{class="stale"} 0`,
		`cipherknock_knocks_rejected_total{class="a class from a newer daemon"} 9`,
		"cipherknock_grants_open 3\n", "cipherknock_sources_tracked 2\n", "cipherknock_sources_capacity 4096\n",
		"cipherknock_source_evictions_total 3\n", "cipherknock_replay_entries 5\n", "cipherknock_replay_capacity 65536\n",
		"cipherknock_capture_packets_matched_total 10\n", "cipherknock_capture_drops_total 1\n",
		"cipherknock_capture_packets_delivered_total 8\n", "cipherknock_capture_packets_rejected_total 1\n",
		"cipherknock_capture_malformed_total 0\n", "cipherknock_triggers_opened_total 4\n", "cipherknock_triggers_busy_total 1\n",
		"cipherknock_firewall_repairs_total 1\n", "cipherknock_firewall_owned 1\n", "cipherknock_status_ok 0\n",
		"# TYPE cipherknock_knocks_rejected_total counter\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
	for _, c := range Classes() {
		if !strings.Contains(out, `cipherknock_knocks_rejected_total{class=`+label(c)+`} `) {
			t.Errorf("class %q not listed", c)
		}
	}
	b.Reset()
	(&Status{Rejected: map[string]uint64{}}).WritePrometheus(&b)
	out = b.String()
	for _, absent := range []string{"cipherknock_capture_", "cipherknock_triggers_"} {
		if strings.Contains(out, absent) {
			t.Errorf("%s without a capture or triggers:\n%s", absent, out)
		}
	}
	if !strings.Contains(out, "cipherknock_status_ok 1\n") || !strings.Contains(out, "cipherknock_firewall_owned 0\n") {
		t.Errorf("empty status:\n%s", out)
	}
}
