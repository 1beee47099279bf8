package crypto_test

import (
	"fmt"
	"log"
	"time"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/ports"
)

// Example_roundTrip walks a knock from the client to the server: seal it,
// map its bytes to ports, assemble the ports in whatever order they
// arrive, and open it.
func Example_roundTrip() {
	// Both sides hold the user's key and the realm key, as text in their
	// configuration.
	userKey, err := crypto.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	realmKey, err := crypto.GenerateRealmKey()
	if err != nil {
		log.Fatal(err)
	}
	keyText, realmText := userKey.Encode(), realmKey.Encode()

	// Client: seal a knock that opens TCP port 22 for an hour to the
	// address the knock comes from, as user 7 of realm "home".
	ck, _ := crypto.ParseKey(keyText)
	crk, _ := crypto.ParseRealmKey(realmText)
	realm, err := crypto.NewRealm("home", &crk)
	if err != nil {
		log.Fatal(err)
	}
	now := time.Now().Unix()
	k := crypto.Knock{
		Action:   crypto.ActionOpen,
		Mode:     crypto.ModeSource,
		Proto:    ports.TCP,
		Port:     22,
		Duration: 3600,
		Time:     uint32(now),
	}
	if err := k.RandomNonce(); err != nil {
		log.Fatal(err)
	}
	knock, err := crypto.Seal(nil, realm, 7, crypto.NewUser(&ck), &k)
	if err != nil {
		log.Fatal(err)
	}
	ports := encoding.DefaultSpan.AppendPorts(nil, knock)
	fmt.Printf("%d bytes, sent to %d ports, the first %d\n", len(knock), len(ports), ports[0])

	// Server: the packets arrive in some order, here reversed, one of
	// them twice.
	sk, _ := crypto.ParseKey(keyText)
	srk, _ := crypto.ParseRealmKey(realmText)
	srealm, err := crypto.NewRealm("home", &srk)
	if err != nil {
		log.Fatal(err)
	}
	opener := crypto.NewOpener(srealm, map[uint16]*crypto.User{7: crypto.NewUser(&sk)}, crypto.DefaultWindow)
	var a encoding.Assembler
	arrived := append([]uint16{ports[3]}, ports...)
	for i := len(arrived) - 1; i >= 0; i-- {
		if !a.AddPort(encoding.DefaultSpan, arrived[i]) {
			continue
		}
		got, err := opener.Open(a.Knock(nil), now)
		if err != nil {
			fmt.Println("rejected:", err)
			return
		}
		fmt.Printf("user %d: %v %v/%d for %ds to the %v address\n",
			got.User, got.Knock.Action, got.Knock.Proto, got.Knock.Port, got.Knock.Duration, got.Knock.Mode)
		break
	}
	// Output:
	// 24 bytes, sent to 24 ports, the first 20496
	// user 7: open tcp/22 for 3600s to the source address
}
