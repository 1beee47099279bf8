// Command knocksend sends one knock as UDP datagrams. It is the smallest
// possible sender, for the demo and the end-to-end tests of a tree that
// does not have the cipherknock client; use the client otherwise.
//
//	knocksend -realm R -user N -key-file FILE -port P [-udp] [-duration 5s] HOST
package main

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
)

func main() {
	realm := flag.String("realm", "", "realm")
	user := flag.Int("user", 0, "user index")
	keyFile := flag.String("key-file", "", "file holding the key")
	port := flag.Int("port", 0, "port to open")
	udp := flag.Bool("udp", false, "open a UDP port instead of TCP")
	dur := flag.Duration("duration", 5*time.Second, "how long")
	base := flag.Int("base", encoding.DefaultBase, "span base")
	flag.Parse()
	if err := knock(*realm, *user, *keyFile, *port, *udp, *dur, *base, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "knocksend:", err)
		os.Exit(1)
	}
}

func knock(realm string, user int, keyFile string, port int, udp bool, dur time.Duration, base int, host string) error {
	text, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	key, err := crypto.ParseKey(string(text))
	if err != nil {
		return fmt.Errorf("%s: %w", keyFile, err)
	}
	r, err := crypto.NewRealm(realm, nil)
	if err != nil {
		return err
	}
	span, err := encoding.NewSpan(base)
	if err != nil {
		return err
	}
	dst, err := netip.ParseAddr(host)
	if err != nil {
		return err
	}
	k := crypto.Knock{Action: crypto.ActionOpen, Proto: crypto.TCP, Port: uint16(port), Duration: uint16(dur / time.Second), Time: uint32(time.Now().Unix())}
	if udp {
		k.Proto = crypto.UDP
	}
	if err := k.RandomNonce(); err != nil {
		return err
	}
	b, err := crypto.Seal(nil, r, uint16(user), crypto.NewUser(&key), &k)
	if err != nil {
		return err
	}
	c, err := net.ListenUDP("udp", nil)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, p := range span.AppendPorts(nil, b) {
		if _, err := c.WriteToUDPAddrPort(nil, netip.AddrPortFrom(dst, p)); err != nil {
			return err
		}
	}
	fmt.Printf("knocked %s with %d packets for tcp/%d, %v\n", dst, len(b), port, dur)
	return nil
}
