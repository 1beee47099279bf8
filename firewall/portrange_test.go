package firewall

import (
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
)

func TestParsePortRange(t *testing.T) {
	for s, want := range map[string]PortRange{
		"tcp/22":        {crypto.TCP, 22, 22},
		"UDP/8000-8100": {crypto.UDP, 8000, 8100},
		"tcp/1-65535":   {crypto.TCP, 1, 65535},
		"udp/6000-6000": {crypto.UDP, 6000, 6000},
	} {
		r, err := ParsePortRange(s)
		if err != nil || r != want {
			t.Errorf("%s: %+v %v", s, r, err)
		}
		if back, err := ParsePortRange(r.String()); err != nil || back != r {
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
		if _, err := ParsePortRange(s); err == nil || !strings.HasPrefix(err.Error(), msg) {
			t.Errorf("%.50s: %v, want %s", s, err, msg)
		}
	}
}
