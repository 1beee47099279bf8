package main

import (
	"crypto/aes"
	"slices"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
)

// Bodies: what the receiver observes, built from the sealed knock.

type bodyFunc = func(knock []byte, s encoding.Span) []uint16

func sent(knock []byte, s encoding.Span) []uint16 { return s.AppendPorts(nil, knock) }

func reversed(knock []byte, s encoding.Span) []uint16 {
	p := sent(knock, s)
	slices.Reverse(p)
	return p
}

// shuffle permutes ports with a Fisher-Yates shuffle driven by a fixed
// xorshift64 sequence, so the order is the same on every run.
func shuffle(ports []uint16, seed uint64) []uint16 {
	out := slices.Clone(ports)
	x := seed | 1
	for i := len(out) - 1; i > 0; i-- {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		j := int(x % uint64(i+1))
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func shuffled(seed uint64) bodyFunc {
	return func(knock []byte, s encoding.Span) []uint16 { return shuffle(sent(knock, s), seed) }
}

// eachTwice sends every packet twice in a row.
func eachTwice(knock []byte, s encoding.Span) []uint16 {
	var out []uint16
	for _, p := range sent(knock, s) {
		out = append(out, p, p)
	}
	return out
}

// sentTwice sends the whole sequence, then all of it again.
func sentTwice(knock []byte, s encoding.Span) []uint16 {
	p := sent(knock, s)
	return append(p, p...)
}

func twiceShuffled(seed uint64) bodyFunc {
	return func(knock []byte, s encoding.Span) []uint16 { return shuffle(sentTwice(knock, s), seed) }
}

// withByte replaces the byte at position pos by b.
func withByte(pos int, b byte) bodyFunc {
	return func(knock []byte, s encoding.Span) []uint16 {
		k := slices.Clone(knock)
		k[pos] = b
		return sent(k, s)
	}
}

// flipBit flips one bit of the byte at position pos; pos < 0 counts from
// the end.
func flipBit(pos int, mask byte) bodyFunc {
	return func(knock []byte, s encoding.Span) []uint16 {
		k := slices.Clone(knock)
		if pos < 0 {
			pos += len(k)
		}
		k[pos] ^= mask
		return sent(k, s)
	}
}

// drop leaves out position pos; pos < 0 counts from the end.
func drop(pos int) bodyFunc {
	return func(knock []byte, s encoding.Span) []uint16 {
		p := sent(knock, s)
		if pos < 0 {
			pos += len(p)
		}
		return slices.Delete(p, pos, pos+1)
	}
}

// keepFirst keeps only the first n positions.
func keepFirst(n int) bodyFunc {
	return func(knock []byte, s encoding.Span) []uint16 { return sent(knock, s)[:n] }
}

func empty(knock []byte, s encoding.Span) []uint16 { return nil }

// extra appends one more packet, for byte b at position pos.
func extra(pos int, b byte) bodyFunc {
	return func(knock []byte, s encoding.Span) []uint16 { return append(sent(knock, s), s.Port(pos, b)) }
}

// extraPort appends one more packet to port, which may lie outside the span.
// at says where it goes in the sequence.
func extraPort(at int, port func(s encoding.Span) uint16) bodyFunc {
	return func(knock []byte, s encoding.Span) []uint16 {
		return slices.Insert(sent(knock, s), at, port(s))
	}
}

// conflict appends a second packet for position pos with the byte XOR mask.
func conflict(pos int, mask byte) bodyFunc {
	return func(knock []byte, s encoding.Span) []uint16 {
		return append(sent(knock, s), s.Port(pos, knock[pos]^mask))
	}
}

// flipTagBitFixUser flips bits of tag byte i and rewrites the user field under the
// realm's outer key so that the receiver still finds the same user index.
// Without a realm key the outer key is public, so anyone can do this: the
// receiver must then fail on the tag.
func flipTagBitFixUser(index uint16, outerKey [32]byte, i int, mask byte) bodyFunc {
	return func(knock []byte, s encoding.Span) []uint16 {
		k := slices.Clone(knock)
		n := len(k)
		k[n-crypto.TagSize+i] ^= mask
		b, err := aes.NewCipher(outerKey[:])
		if err != nil {
			panic(err)
		}
		var blk, pad [16]byte
		copy(blk[:], k[n-crypto.TagSize:])
		b.Encrypt(pad[:], blk[:])
		k[1], k[2] = byte(index>>8)^pad[0], byte(index)^pad[1]
		return sent(k, s)
	}
}
