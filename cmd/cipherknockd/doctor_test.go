package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/cipherknock/cipherknock/config"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/internal/nstest"
	"github.com/cipherknock/cipherknock/sniff"
)

func TestEffectiveCaps(t *testing.T) {
	status := "Name:\tcipherknockd\nCapInh:\t0000000000000000\nCapPrm:\t0000000000003000\nCapEff:\t0000000000003000\n"
	caps, err := effectiveCaps(status)
	if err != nil || caps&(1<<capNetRaw) == 0 || caps&(1<<capNetAdmin) == 0 || caps != 0x3000 {
		t.Fatalf("%x %v", caps, err)
	}
	if caps, err := effectiveCaps("CapEff:\t0000000000000000\n"); err != nil || caps != 0 {
		t.Fatalf("%x %v", caps, err)
	}
	if _, err := effectiveCaps("Name: x\n"); err == nil {
		t.Fatal("no CapEff line accepted")
	}
}

// TestDoctorAgreesWithCapture builds a namespace with an interface of each
// kind the rule tells apart (loopback, up with an address, down with an
// address, only a link-local address, no address; veth pairs, whose
// other ends have no address) and, for several
// configurations, compares the interfaces doctor marks with those a real
// AF_PACKET capture reports it captures (its "capturing" log line), and
// both with the rule as README states it.
func TestDoctorAgreesWithCapture(t *testing.T) {
	ns := nstest.New(t, "docag")
	ns.Run("ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
	ns.Run("ip", "addr", "add", "198.18.5.1/24", "dev", "up0")
	ns.Run("ip", "link", "set", "up0", "up")
	ns.Run("ip", "link", "add", "down0", "type", "veth", "peer", "name", "down0p")
	ns.Run("ip", "addr", "add", "198.18.6.1/24", "dev", "down0")
	ns.Run("ip", "link", "add", "ll0", "type", "veth", "peer", "name", "ll0p")
	ns.Run("ip", "addr", "add", "fe80::1/64", "dev", "ll0", "nodad")
	ns.Run("ip", "link", "set", "ll0", "up")
	ns.Run("ip", "link", "add", "bare0", "type", "veth", "peer", "name", "bare0p")
	ns.Run("ip", "link", "set", "bare0", "up")

	for _, c := range []struct {
		interfaces []string
		loopback   bool
		want       []string // the oracle: README's words on interfaces and loopback
	}{
		{nil, false, []string{"down0", "up0"}},
		{nil, true, []string{"down0", "lo", "up0"}},
		{[]string{"ll0", "down0", "absent0"}, false, []string{"down0", "ll0"}},
		{[]string{"bare0"}, true, []string{"bare0", "lo"}},
		{[]string{"lo"}, false, []string{"lo"}},
	} {
		t.Run(fmt.Sprintf("%v,loopback=%v", c.interfaces, c.loopback), func(t *testing.T) {
			cfg := &config.Config{Span: encoding.DefaultSpan, Capture: config.DefaultCapture, Interfaces: c.interfaces, Loopback: c.loopback}
			var marked, captured []string
			if err := ns.Do(func() error {
				for _, i := range interfaces(cfg) {
					if i.Capture {
						marked = append(marked, i.Name)
					}
				}
				var logs bytes.Buffer
				s, err := sniff.New(cfg.SniffConfig(), slog.New(slog.NewJSONHandler(&logs, nil)))
				if err != nil {
					return err
				}
				defer s.Close()
				dec := json.NewDecoder(&logs)
				for {
					var l struct {
						Msg        string   `json:"msg"`
						Interfaces []string `json:"interfaces"`
					}
					if err := dec.Decode(&l); err != nil {
						return fmt.Errorf("no capturing line: %w", err)
					}
					if l.Msg == "capturing" {
						captured = l.Interfaces
						return nil
					}
				}
			}); err != nil {
				t.Fatal(err)
			}
			slices.Sort(marked)
			if !slices.Equal(marked, c.want) || !slices.Equal(captured, c.want) {
				t.Errorf("doctor marks %v, the capture reads %v, want %v", marked, captured, c.want)
			}
		})
	}
}
