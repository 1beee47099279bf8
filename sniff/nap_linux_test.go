package sniff

import (
	"testing"
	"time"
)

// TestNapper checks the reader's naps: none for a quiet stream, a backlog,
// or a burst such as a knock sent back to back, and naps of napMin up to
// napMax only for a sustained flood.
func TestNapper(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	var clock time.Time
	z := napper{now: func() time.Time { return clock }}
	feed := func(n int, gap, age time.Duration) (last time.Duration) {
		for range n {
			t0 = t0.Add(gap)
			clock = t0.Add(age)
			last = z.next(t0)
		}
		return last
	}
	if d := feed(100, time.Millisecond, time.Microsecond); d != 0 {
		t.Errorf("quiet stream: nap %v", d)
	}
	// A knock of 40 packets 5 µs apart, read as they come.
	feed(1, 10*time.Millisecond, time.Microsecond)
	for i := range 39 {
		t0 = t0.Add(5 * time.Microsecond)
		clock = t0.Add(time.Microsecond)
		if d := z.next(t0); d != 0 {
			t.Fatalf("burst packet %d: nap %v, want none", i, d)
		}
	}
	// The same burst found in the ring long after it came: no nap.
	feed(1, 10*time.Millisecond, time.Microsecond)
	if d := feed(39, 5*time.Microsecond, time.Millisecond); d != 0 {
		t.Errorf("backlog: nap %v", d)
	}
	// A flood at 125k packets/s: no naps in its first window, then long
	// ones.
	feed(1, 2*floodEnd, time.Microsecond)
	if d := feed(sustained/2, 8*time.Microsecond, time.Microsecond); d != 0 {
		t.Errorf("flood, first packets: nap %v, want none", d)
	}
	if d, want := feed(sustained, 8*time.Microsecond, time.Microsecond), min(napBatch*8*time.Microsecond, napMax); d != want {
		t.Errorf("sustained flood at 125k packets/s: nap %v, want %v", d, want)
	}
	// In a flood, packets read up to a nap late still lead to a nap, and
	// the pauses between the senders' batches do not stop it; an older
	// backlog is drained first.
	if d := feed(10, 8*time.Microsecond, napMax/2); d != napMax {
		t.Errorf("flood read 1 ms late: nap %v, want %v", d, napMax)
	}
	if d := feed(1, 300*time.Microsecond, time.Microsecond); d != napMax {
		t.Errorf("flood after a pause of its senders: nap %v, want %v", d, napMax)
	}
	if d := feed(10, 8*time.Microsecond, 2*napMax); d != 0 {
		t.Errorf("flood backlog of 4 ms: nap %v", d)
	}
	// At 1 Mpps the nap aims at napBatch packets.
	if d, want := feed(2*sustained, time.Microsecond, time.Microsecond), napBatch*time.Microsecond; d != want {
		t.Errorf("sustained flood at 1M packets/s: nap %v, want about %v", d, want)
	}
	// Pauses of the flood's senders do not end it.
	feed(1, 5*time.Millisecond, time.Microsecond)
	if d := feed(10, time.Microsecond, time.Microsecond); d != napBatch*time.Microsecond {
		t.Errorf("flood after a pause: nap %v", d)
	}
	// A flood that thins out to a trickle no longer counts as one.
	feed(2*sustained, 200*time.Microsecond, time.Microsecond)
	if d := feed(10, time.Microsecond, time.Microsecond); d != 0 {
		t.Errorf("burst after a trickle: nap %v, want none", d)
	}
	// A silence ends the flood: the next burst is read without naps.
	feed(2*sustained, time.Microsecond, time.Microsecond)
	feed(1, 2*floodEnd, time.Microsecond)
	if d := feed(10, 5*time.Microsecond, time.Microsecond); d != 0 {
		t.Errorf("burst after a flood: nap %v, want none", d)
	}
	// A flood whose napBatch packets come in less than napMin: napMin.
	feed(1, 2*floodEnd, time.Microsecond)
	if d := feed(2*sustained, 20*time.Nanosecond, 10*time.Nanosecond); d != napMin {
		t.Errorf("flood at 50M packets/s: nap %v, want %v", d, napMin)
	}
	// Packets received on two CPUs reach the ring a little out of order:
	// a flood at 50k packets/s whose every fourth stamp is 3 µs older than
	// the one before it is still a flood.
	feed(1, 2*floodEnd, time.Microsecond)
	var d time.Duration
	for i := range 4 * sustained {
		t0 = t0.Add(20 * time.Microsecond)
		at := t0
		if i%4 == 3 {
			at = t0.Add(-23 * time.Microsecond)
		}
		clock = t0.Add(time.Microsecond)
		d = z.next(at)
	}
	if want := min(napBatch*20*time.Microsecond, napMax); d != want {
		t.Errorf("flood with stamps out of order: nap %v, want %v", d, want)
	}
	// A clock stepped back is a new stream, not a dense one.
	if d := feed(1, -time.Second, time.Microsecond); d != 0 {
		t.Errorf("clock step: nap %v", d)
	}
}

// BenchmarkNapper is the nap decision per packet of a flood the reader
// keeps up with: 8 µs apart, each read 2 µs after it arrived.
func BenchmarkNapper(b *testing.B) {
	t0 := time.Now()
	var clock time.Time
	z := napper{now: func() time.Time { return clock }}
	b.ReportAllocs()
	for b.Loop() {
		t0 = t0.Add(8 * time.Microsecond)
		clock = t0.Add(2 * time.Microsecond)
		z.next(t0)
	}
}
