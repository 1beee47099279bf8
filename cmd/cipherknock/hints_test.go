package main

import (
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/client"
	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/profile"
)

// TestFailureHints checks that the hints follow what the client saw: no
// answer at all, a reset, and an unsynchronised clock.
func TestFailureHints(t *testing.T) {
	p := profile.New("gate.example.net", "gate", 0, crypto.Key{})
	res := &client.Result{Host: "gate.example.net", Port: 22, Proto: "tcp", Transport: "udp"}
	h := failureHints(res, p, false)
	if len(h) != 2 || !strings.HasPrefix(h[0], "nothing on gate.example.net answered the probes: the daemon may be down, udp packets to ports 20480-30719 filtered") {
		t.Errorf("silent server: %q", h)
	}
	res.Reset = true
	h = failureHints(res, p, false)
	if len(h) != 2 || !strings.HasPrefix(h[0], "gate.example.net answered the probes with a reset") {
		t.Errorf("reset: %q", h)
	}
	h = failureHints(res, p, true)
	if len(h) != 3 || !strings.Contains(h[0], "clock is not synchronised") || !strings.Contains(h[0], "--time-offset") {
		t.Errorf("unsynchronised clock: %q", h)
	}
	for _, l := range h {
		if strings.Contains(l, "ck-key-") {
			t.Errorf("a hint shows a key: %q", l)
		}
	}
}
