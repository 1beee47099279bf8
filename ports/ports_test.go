package ports

import (
	"slices"
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	for s, want := range map[string]Range{
		"tcp/22":        {Proto: TCP, From: 22, To: 22},
		"UDP/8000-8100": {Proto: UDP, From: 8000, To: 8100},
		"tcp/1-65535":   {Proto: TCP, From: 1, To: 65535},
		"udp/6000-6000": {Proto: UDP, From: 6000, To: 6000},
	} {
		r, err := ParseRange(s)
		if err != nil || r != want {
			t.Errorf("%s: %+v %v", s, r, err)
		}
		if back, err := ParseRange(r.String()); err != nil || back != r {
			t.Errorf("%s: %s reads back as %+v %v", s, r, back, err)
		}
	}
	for s, msg := range map[string]string{
		"tcp22":                 `"tcp22": want PROTO/PORT or PROTO/FROM-TO (like tcp/22)`,
		"sctp/22":               `"sctp/22": protocol must be tcp or udp`,
		"tcp/x":                 `"tcp/x": port must be a number 1..65535`,
		"tcp/0":                 `"tcp/0": port outside 1..65535`,
		"tcp/9-8":               `"tcp/9-8": range ends before it starts`,
		strings.Repeat("a", 99): `"` + strings.Repeat("a", 40) + `...": want`,
	} {
		if _, err := ParseRange(s); err == nil || !strings.HasPrefix(err.Error(), msg) {
			t.Errorf("%.50s: %v, want %s", s, err, msg)
		}
	}
}

func TestProto(t *testing.T) {
	for _, p := range []Proto{TCP, UDP} {
		if q, err := ParseProto(p.String()); err != nil || q != p {
			t.Errorf("%v: %v %v", p, q, err)
		}
	}
	for _, s := range []string{"", "TCP", "sctp", "tcp "} {
		if _, err := ParseProto(s); err != ErrProto {
			t.Errorf("%q: %v", s, err)
		}
	}
	if s := Proto(7).String(); s != "proto(7)" {
		t.Error(s)
	}
}

func TestMerge(t *testing.T) {
	in := []Range{
		{UDP, 5000, 5010}, {TCP, 8000, 8100}, {TCP, 22, 22}, {TCP, 23, 23},
		{TCP, 8050, 8201}, {UDP, 5011, 5011}, {TCP, 22, 22}, {UDP, 1, 1},
	}
	orig := slices.Clone(in)
	want := []Range{{TCP, 22, 23}, {TCP, 8000, 8201}, {UDP, 1, 1}, {UDP, 5000, 5011}}
	if got := Merge(in); !slices.Equal(got, want) {
		t.Errorf("Merge = %v, want %v", got, want)
	}
	if !slices.Equal(in, orig) {
		t.Error("Merge changed its argument")
	}
	// Same protocol and port, different protocols: never merged.
	if got := Merge([]Range{{UDP, 22, 22}, {TCP, 22, 22}}); !slices.Equal(got, []Range{{TCP, 22, 22}, {UDP, 22, 22}}) {
		t.Error(got)
	}
	if got := Merge([]Range{{TCP, 1, 65535}, {TCP, 65535, 65535}}); !slices.Equal(got, []Range{{TCP, 1, 65535}}) {
		t.Error(got)
	}
	if Merge(nil) != nil {
		t.Error("Merge(nil) not nil")
	}
}

func TestRangeTests(t *testing.T) {
	r := Range{TCP, 8000, 8100}
	for _, c := range []struct {
		p    Proto
		port uint16
		want bool
	}{{TCP, 8000, true}, {TCP, 8100, true}, {TCP, 7999, false}, {TCP, 8101, false}, {UDP, 8050, false}} {
		if r.Contains(c.p, c.port) != c.want || Holds([]Range{{UDP, 1, 1}, r}, c.p, c.port) != c.want {
			t.Errorf("%v holds %v/%d: want %v", r, c.p, c.port, c.want)
		}
	}
	for o, want := range map[Range]bool{
		{TCP, 8100, 9000}: true, {TCP, 1, 8000}: true, {TCP, 8101, 9000}: false,
		{UDP, 8000, 8100}: false, {TCP, 8010, 8020}: true,
	} {
		if r.Overlaps(o) != want || o.Overlaps(r) != want {
			t.Errorf("%v overlaps %v: want %v", r, o, want)
		}
	}
	for v, want := range map[Range]bool{r: true, {TCP, 0, 1}: false, {UDP, 9, 8}: false, {Proto(2), 1, 1}: false} {
		if v.Valid() != want {
			t.Errorf("%v valid: want %v", v, want)
		}
	}
	if Compare(Range{TCP, 1, 2}, Range{TCP, 1, 3}) >= 0 || Compare(Range{UDP, 1, 1}, Range{TCP, 9, 9}) <= 0 || Compare(r, r) != 0 {
		t.Error("Compare")
	}
}
