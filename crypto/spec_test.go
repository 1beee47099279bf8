package crypto_test

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"testing"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/ports"
)

func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func seq32(start byte) [32]byte {
	var b [32]byte
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// TestSpecExamples reproduces the worked examples of SPEC.md Appendix B,
// byte for byte.
func TestSpecExamples(t *testing.T) {
	key := crypto.Key(seq32(0x00))
	rk := crypto.RealmKey(seq32(0x20))
	if got, want := key.Encode(), "ck-key-aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyprjzyibm"; got != want {
		t.Errorf("user key text = %s, want %s", got, want)
	}
	if got, want := rk.Encode(), "ck-realm-eaqseizeeutcokbjfivsyljof4ydcmrtgq2tmnzyhe5dwpb5hy7qitvip4"; got != want {
		t.Errorf("realm key text = %s, want %s", got, want)
	}
	mac, enc := key.Subkeys()
	for _, c := range []struct {
		name string
		got  [32]byte
		want string
	}{
		{"macKey", mac, "d4832624f6614e2412fd960c7933f310d2042602a12ad67f818a7052e64d5802"},
		{"encKey", enc, "3acbac2badca8c103e26eaecf3deb2a8e5617464bc80b03e563794792afddee2"},
		{"outerKey(none)", crypto.OuterKey(nil), "3a99f59afbbe92018cad35fbe32b2b5e98a6ac3d8ef13d518ab8720996204a54"},
		{"outerKey(realm key)", crypto.OuterKey(&rk), "300c85fcb3950ec1b43d87d0ccf2d1f0270fc8a7748f5414319c594a0d668bb4"},
	} {
		if hex.EncodeToString(c.got[:]) != c.want {
			t.Errorf("%s = %x, want %s", c.name, c.got, c.want)
		}
	}

	const time = 1767225600
	u := crypto.NewUser(&key)
	for _, ex := range []struct {
		name  string
		rk    *crypto.RealmKey
		index uint16
		k     crypto.Knock
		plain string
		knock string
		ports string
	}{
		{
			"B.1", nil, 0,
			crypto.Knock{Action: crypto.ActionOpen, Mode: crypto.ModeSource, Proto: ports.TCP, Port: 22, Duration: 3600, Time: time, Nonce: [4]byte{1, 2, 3, 4}},
			"1000160e106955b90001020304",
			"1061d9501f179730dc00517830a0613680fc032c8057c8e1",
			"[20496 20833 21209 21328 21535 21783 22167 22320 22748 22784 23121 23416 23600 23968 24161 24374 24704 25084 25091 25388 25728 25943 26312 26593]",
		},
		{
			"B.2", &rk, 513,
			crypto.Knock{Action: crypto.ActionClose, Mode: crypto.ModeIPv4, Addr: netip.MustParseAddr("192.0.2.1"), Proto: ports.UDP, Port: 51820, Time: time, Nonce: [4]byte{0xde, 0xad, 0xbe, 0xef}},
			"21ca6c00006955b900deadbeefc0000201",
			"11c3e5ec4a1a6e4725a92f107f40cdf5f6ed34b7266491e48ee403fb",
			"[20497 20931 21221 21484 21578 21786 22126 22343 22565 22953 23087 23312 23679 23872 24269 24565 24822 25069 25140 25527 25638 25956 26257 26596 26766 27108 27139 27643]",
		},
	} {
		t.Run(ex.name, func(t *testing.T) {
			if got := hex.EncodeToString(crypto.AppendPlaintext(nil, &ex.k)); got != ex.plain {
				t.Errorf("P = %s, want %s", got, ex.plain)
			}
			realm := mustRealm(t, "example.org", ex.rk)
			b := mustSeal(t, realm, ex.index, u, ex.k)
			if got := hex.EncodeToString(b); got != ex.knock {
				t.Fatalf("K = %s, want %s", got, ex.knock)
			}
			if got := fmt.Sprint(encoding.DefaultSpan.AppendPorts(nil, b)); got != ex.ports {
				t.Errorf("ports = %s\nwant    %s", got, ex.ports)
			}
			o := crypto.NewOpener(realm, map[uint16]*crypto.User{ex.index: u}, 0)
			for _, c := range []struct {
				now  int64
				want error
			}{
				{time - 60, nil}, {time, nil}, {time + 60, nil},
				{time + 61, crypto.ErrStale}, {time - 61, crypto.ErrFuture},
			} {
				res, err := o.Open(b, c.now)
				if err != c.want {
					t.Errorf("Open at %d = %v, want %v", c.now, err, c.want)
				}
				if err == nil {
					wantID := unhex(t, fmt.Sprintf("%04x", ex.index)+ex.knock[len(ex.knock)-16:])
					if res.Knock != ex.k || string(res.ID[:]) != string(wantID) {
						t.Errorf("Open = %+v ID %x, want %+v ID %x", res.Knock, res.ID, ex.k, wantID)
					}
				}
			}
		})
	}
	if got := hex.EncodeToString(crypto.PassphraseSalt("example.org", 0)); got != "0fa0922fc45c8fb4cb334dd8bbb198fc" {
		t.Errorf("PassphraseSalt(example.org, 0) = %s, want SPEC.md §3.2's", got)
	}
}
