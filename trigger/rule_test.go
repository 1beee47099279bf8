package trigger

import (
	"strings"
	"testing"
)

func TestClash(t *testing.T) {
	a := &Rule{Name: "a", In: tcp(100, 200), Line: 1}
	same := &Rule{Name: "same", In: tcp(100, 200), Line: 5}
	otherProto := &Rule{Name: "udp", In: udp(150, 250), Line: 9}
	disjoint := &Rule{Name: "d", In: tcp(201, 300), Line: 13}
	overlap := &Rule{Name: "o", In: tcp(200, 200), Line: 17}
	ok := []*Rule{a, same, otherProto, disjoint}
	for i, r := range ok {
		if c := Clash(ok[:i], r); c != nil {
			t.Errorf("%s clashes with %s", r.Name, c.Name)
		}
	}
	if c := Clash(ok, overlap); c != a {
		t.Errorf("overlap: clash with %v, want a", c)
	}
	_, err := NewEngine(append(ok, overlap), Options{Index: index})
	if err == nil || !strings.Contains(err.Error(), "trigger o: inbound tcp/200 overlaps inbound tcp/100-200 of trigger a") {
		t.Errorf("NewEngine: %v", err)
	}
}
