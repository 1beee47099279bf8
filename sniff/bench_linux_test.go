package sniff

import (
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cipherknock/cipherknock/internal/nstest"
)

// BenchmarkLatency measures how long a knock packet takes from the
// sender's write to the callback, across a veth pair, for the build's
// source: "wire" from before the sendto to the callback, "ring" from the
// kernel's receive timestamp to the callback. Medians and 99th
// percentiles are reported as metrics.
func BenchmarkLatency(b *testing.B) { b.Run(sourceName, benchLatency) }

func benchLatency(b *testing.B) {
	a, bn := nstest.New(b, "sbla"), nstest.New(b, "sblb")
	_, lb := nstest.Connect(a, bn, 47)
	type arrival struct{ at, kernel time.Time }
	got := make(chan arrival, 1)
	startCapture(b, bn, Config{}, func(p *Packet) {
		got <- arrival{time.Now(), p.Time}
	})
	var conn *net.UDPConn
	if err := a.Do(func() (err error) {
		// Unconnected, so the port-unreachable replies are not
		// reported back as write errors.
		conn, err = net.ListenUDP("udp4", nil)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	dst := netip.AddrPortFrom(lb.Addr4, testSpan.Base)
	wire := make([]time.Duration, 0, b.N)
	ring := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := conn.WriteToUDPAddrPort(nil, dst); err != nil {
			b.Fatal(err)
		}
		select {
		case r := <-got:
			wire = append(wire, r.at.Sub(t0))
			ring = append(ring, r.at.Sub(r.kernel))
		case <-time.After(5 * time.Second):
			b.Fatal("packet not captured")
		}
	}
	b.StopTimer()
	report := func(d []time.Duration, name string) {
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Nanoseconds())/1e3, name+"-median-µs")
		b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds())/1e3, name+"-p99-µs")
	}
	report(wire, "wire")
	report(ring, "ring")
}

// BenchmarkCapture measures packets per second through the real socket:
// UDP knock packets from an AF_PACKET sender in one namespace, captured
// and delivered in the other. The sender's system calls, which also run
// the receiving side of the veth pair, usually bound the rate.
func BenchmarkCapture(b *testing.B) {
	a, bn := nstest.New(b, "sbca"), nstest.New(b, "sbcb")
	la, lb := nstest.Connect(a, bn, 48)
	var n atomic.Int64
	c := startCapture(b, bn, Config{}, func(p *Packet) { n.Add(1) })
	raw := newRawSender(b, la, lb)
	data := between(pkt{udp: true, dst: testSpan.Base}, la.Addr4, lb.Addr4).bytes(b)
	b.ResetTimer()
	for range b.N {
		if err := raw.send(data); err != nil {
			b.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); n.Load() < int64(b.N)-int64(c.s.Stats().Dropped) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "packets/s")
	if st := c.s.Stats(); st.Dropped > 0 {
		b.ReportMetric(float64(st.Dropped), "dropped")
	}
}

// BenchmarkPacketPath measures everything user space does per packet
// after the ring hands it over: interface check, decoding and counters.
func BenchmarkPacketPath(b *testing.B) {
	s := &Sniffer{dec: newDecoder(testSpan)}
	ifs := []int{2, 3}
	s.ifs.Store(&ifs)
	local := []netip.Addr{netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("192.0.2.2")}
	s.addrs.Store(&local)
	data := pkt{udp: true, dst: 20480}.bytes(b)
	fr := frame{ifindex: 3, at: time.Now(), wire: len(data)}
	var p Packet
	b.ReportAllocs()
	for b.Loop() {
		if !s.process(data, fr, &p) {
			b.Fatal("refused")
		}
	}
}
