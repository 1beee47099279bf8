package config

import (
	"os"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/ports"
	"github.com/cipherknock/cipherknock/trigger"
)

// TestTriggers: a configuration of triggers alone needs no [user], and its
// rules arrive parsed, in file order.
func TestTriggers(t *testing.T) {
	data, err := os.ReadFile("testdata/good/trigger.conf")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("trigger.conf", data, "", 0o600, memFS{})
	if err != nil {
		t.Fatal(err)
	}
	if c.TriggerMode != TriggerNAT || c.TriggerMaxMappings != 1024 || len(c.Users) != 0 || len(c.Triggers) != 2 {
		t.Fatalf("config: %+v", c)
	}
	id, game := c.Triggers[0], c.Triggers[1]
	if id.Name != "ident" || id.Out != (ports.Range{Proto: ports.TCP, From: 25, To: 25}) ||
		id.In != (ports.Range{Proto: ports.TCP, From: 113, To: 113}) || id.Duration != time.Minute ||
		len(id.Inside) != 2 || id.Outside[0] != "eth0" || id.OnConflict != trigger.LastWins || id.Line != 7 {
		t.Errorf("ident: %+v", id)
	}
	if game.Name != "game" || game.In.From != 7000 || game.In.To != 7010 || game.OnConflict != trigger.Refuse {
		t.Errorf("game: %+v", game)
	}
	// On a NAT gateway the forwarded ports are not the gateway's own.
	if p := c.Protect(); len(p) != 0 {
		t.Errorf("Protect in nat mode: %+v", p)
	}
	if o := c.TriggerOutside(); len(o) != 1 || o[0] != "eth0" {
		t.Errorf("TriggerOutside: %v", o)
	}
}

// TestTriggersHost: in host mode the triggers' inbound ports are closed
// with the users' ports, and the defaults apply.
func TestTriggersHost(t *testing.T) {
	conf := "[daemon]\nrealm = example.org\n[trigger ident]\noutbound = tcp/25\ninbound = tcp/113\nduration = 60\ninside = eth0\n" +
		"[user alice]\nindex = 0\nkey-file = alice.key\nports = tcp/22\n"
	c, err := Parse("host.conf", []byte(conf), "", 0o600, memFS{})
	if err != nil {
		t.Fatal(err)
	}
	if c.TriggerMode != TriggerHost || c.TriggerMaxMappings != trigger.DefaultMaxMappings {
		t.Errorf("defaults: %q %d", c.TriggerMode, c.TriggerMaxMappings)
	}
	p := c.Protect()
	if len(p) != 2 || p[0].From != 22 || p[1].From != 113 || p[1].To != 113 {
		t.Errorf("Protect: %+v", p)
	}
	if c.Triggers[0].Inside[0] != "eth0" {
		t.Errorf("inside: %v", c.Triggers[0].Inside)
	}
}
