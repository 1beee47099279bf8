package main

import (
	"math"
	"net/netip"
	"strings"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/internal/vectors"
	"github.com/cipherknock/cipherknock/ports"
)

// with returns s changed by f.
func with(s spec, f func(*spec)) spec {
	f(&s)
	return s
}

func fail(s spec, class error) spec {
	s.expect = class.Error()
	return s
}

func ipv4(s *spec, a string) {
	s.knock.Mode = crypto.ModeIPv4
	s.knock.Addr = addr(a)
}

func ipv6(s *spec, a string) {
	s.knock.Mode = crypto.ModeIPv6
	s.knock.Addr = addr(a)
}

func bound(s *spec, a string) {
	s.knock.Mode = crypto.ModeBound
	s.knock.Addr = addr(a)
}

const realm64 = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._"

// all returns every vector. Names say what is tested; comments say how.
func all() []spec {
	var v []spec
	add := func(s ...spec) { v = append(v, s...) }

	// Positive: address modes, protocols, actions.
	add(
		base("source_tcp_basic", "open tcp/22 for an hour to the knock's own source address"),
		with(base("source_udp_basic", "open udp/51820 for ten minutes to the source address"), func(s *spec) {
			s.knock.Proto, s.knock.Port, s.knock.Duration = ports.UDP, 51820, 600
		}),
		with(base("source_close_tcp", "close tcp/22 for the source address; a close carries duration 0"), func(s *spec) {
			s.knock.Action, s.knock.Duration = crypto.ActionClose, 0
		}),
		with(base("ipv4_tcp_basic", "open tcp/443 for five minutes to an explicit IPv4 address"), func(s *spec) {
			ipv4(s, "203.0.113.9")
			s.knock.Port, s.knock.Duration = 443, 300
		}),
		with(base("ipv4_udp_basic", "open udp/1194 to an explicit IPv4 address"), func(s *spec) {
			ipv4(s, "198.51.100.23")
			s.knock.Proto, s.knock.Port = ports.UDP, 1194
		}),
		with(base("ipv4_close_udp", "close udp/53 for an explicit IPv4 address"), func(s *spec) {
			ipv4(s, "192.0.2.77")
			s.knock.Action, s.knock.Proto, s.knock.Port, s.knock.Duration = crypto.ActionClose, ports.UDP, 53, 0
		}),
		with(base("ipv6_tcp_basic", "open tcp/22 to an explicit IPv6 address; the longest knock, 40 packets"), func(s *spec) {
			ipv6(s, "2001:db8::7")
		}),
		with(base("ipv6_udp_basic", "open udp/51820 to an explicit IPv6 address"), func(s *spec) {
			ipv6(s, "2001:db8:85a3::8a2e:370:7334")
			s.knock.Proto, s.knock.Port, s.knock.Duration = ports.UDP, 51820, 900
		}),
		with(base("ipv6_close_tcp", "close tcp/8443 for an explicit IPv6 address"), func(s *spec) {
			ipv6(s, "2001:db8:1:2:3:4:5:6")
			s.knock.Action, s.knock.Port, s.knock.Duration = crypto.ActionClose, 8443, 0
		}),
	)

	// Positive: edge values of the plaintext fields.
	add(
		with(base("port_1", "the lowest port, 1"), func(s *spec) { s.knock.Port = 1 }),
		with(base("port_65535", "the highest port, 65535, over udp"), func(s *spec) {
			s.knock.Proto, s.knock.Port = ports.UDP, 65535
		}),
		with(base("duration_1", "the shortest open, 1 second"), func(s *spec) { s.knock.Duration = 1 }),
		with(base("duration_65535", "the longest open, 65535 seconds"), func(s *spec) { s.knock.Duration = 65535 }),
		with(base("timestamp_zero", "timestamp 0, received at time 0"), func(s *spec) {
			s.knock.Time, s.recvTime = 0, 0
		}),
		with(base("timestamp_max", "timestamp 4294967295, the last second of the u32 field, received then"), func(s *spec) {
			s.knock.Time, s.recvTime = 4294967295, 4294967295
		}),
		with(base("nonce_zero", "an all-zero nonce is a valid nonce"), func(s *spec) {
			s.fixedNonce = true
			s.knock.Nonce = [4]byte{}
		}),
		with(base("nonce_ones", "an all-ones nonce"), func(s *spec) {
			s.fixedNonce = true
			s.knock.Nonce = [4]byte{0xff, 0xff, 0xff, 0xff}
		}),
	)

	// Positive: the freshness window, exactly at its edges.
	for _, w := range []struct {
		window int // 0: the receiver's default, 60 s
		name   string
	}{{0, "default"}, {5, "5"}, {600, "600"}} {
		span := w.window
		if span == 0 {
			span = crypto.DefaultWindow
		}
		add(
			with(base("window_"+w.name+"_past_edge", "sealed exactly one window ago: still fresh"), func(s *spec) {
				s.recvWindow, s.recvTime = w.window, t0+int64(span)
			}),
			with(base("window_"+w.name+"_future_edge", "sealed exactly one window ahead of the receiver's clock: still fresh"), func(s *spec) {
				s.recvWindow, s.recvTime = w.window, t0-int64(span)
			}),
		)
	}

	// Positive: user indexes, realm names and keys, span bases, passphrases.
	add(
		with(base("user_index_0", "the lowest user index, 0"), func(s *spec) { s.index = 0 }),
		with(base("user_index_1", "user index 1"), func(s *spec) { s.index = 1 }),
		with(base("user_index_65535", "the highest user index, 65535"), func(s *spec) { s.index = 65535 }),
		with(base("realm_one_char", "the shortest realm name, one byte"), func(s *spec) { s.realm = "a" }),
		with(base("realm_64_chars", "the longest realm name, 64 bytes, using every allowed character class"), func(s *spec) {
			s.realm = realm64
		}),
		with(base("realm_key_source_tcp", "a realm with a realm key: the user field is hidden under a secret outer key"), func(s *spec) {
			s.realmKey = rk1
		}),
		with(base("realm_key_ipv4_udp", "realm key, explicit IPv4 address, udp"), func(s *spec) {
			s.realmKey = rk1
			ipv4(s, "203.0.113.200")
			s.knock.Proto, s.knock.Port = ports.UDP, 4500
		}),
		with(base("realm_key_ipv6", "realm key, explicit IPv6 address"), func(s *spec) {
			s.realmKey = rk2
			ipv6(s, "2001:db8:ffff::1")
			s.index = 65535
		}),
		with(base("span_base_1024", "the lowest span base, 1024: ports 1024..11263"), func(s *spec) { s.spanBase = 1024 }),
		with(base("span_base_55296", "the highest span base, 55296: the span of an IPv6 knock ends at port 65535"), func(s *spec) {
			s.spanBase = 55296
			ipv6(s, "2001:db8::55")
		}),
		with(base("span_base_default", "no span-base header: the default base 20480"), func(s *spec) { s.spanBase = 0 }),
		with(base("passphrase_ipv6_realm_key", "a passphrase key in another realm and index, with a realm key"), func(s *spec) {
			s.passphrase, s.realm, s.index, s.realmKey = pass1, "lab", 3, rk1
			ipv6(s, "2001:db8::3")
		}),
	)

	// Positive: edge addresses that are usable.
	for _, a := range []struct{ name, addr, why string }{
		{"ipv4_addr_0_0_0_1", "0.0.0.1", "the lowest IPv4 address that is not unspecified"},
		{"ipv4_addr_loopback", "127.0.0.1", "loopback is a usable address"},
		{"ipv4_addr_223_255_255_255", "223.255.255.255", "the highest address below multicast"},
		{"ipv4_addr_240_0_0_0", "240.0.0.0", "the lowest address above multicast"},
		{"ipv4_addr_255_255_255_254", "255.255.255.254", "the highest address below the limited broadcast"},
		{"ipv6_addr_loopback", "::1", "IPv6 loopback"},
		{"ipv6_addr_link_local", "fe80::1", "a link-local address (no zone in the knock)"},
		{"ipv6_addr_below_multicast", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "the highest address below multicast ff00::/8"},
		{"ipv6_addr_ipv4_compatible", "::102:304", "::1.2.3.4, IPv4-compatible (not IPv4-mapped), is accepted"},
		{"ipv6_addr_nat64", "64:ff9b::c000:201", "a NAT64 address, 64:ff9b::192.0.2.1"},
	} {
		add(with(base(a.name, a.addr+": "+a.why), func(s *spec) {
			if netip.MustParseAddr(a.addr).Is4() {
				ipv4(s, a.addr)
			} else {
				ipv6(s, a.addr)
			}
		}))
	}

	// Positive: the receiver needs no order and ignores agreeing duplicates.
	add(
		with(base("source_reversed", "the packets arrive in reverse order, header last"), func(s *spec) { s.body = reversed }),
		with(base("source_reordered", "the packets arrive shuffled"), func(s *spec) { s.body = shuffled(1) }),
		with(base("source_each_packet_twice", "every packet arrives twice in a row"), func(s *spec) { s.body = eachTwice }),
		with(base("source_duplicated_shuffled", "the sequence is sent twice and everything arrives shuffled"), func(s *spec) {
			s.body = twiceShuffled(2)
		}),
		with(base("ipv4_reordered", "an IPv4 knock whose packets arrive shuffled"), func(s *spec) {
			ipv4(s, "203.0.113.9")
			s.body = shuffled(3)
		}),
		with(base("ipv4_sent_twice", "an IPv4 knock sent twice, whole sequence after whole sequence"), func(s *spec) {
			ipv4(s, "203.0.113.9")
			s.body = sentTwice
		}),
		with(base("ipv6_reordered", "an IPv6 knock whose packets arrive shuffled"), func(s *spec) {
			ipv6(s, "2001:db8::7")
			s.body = shuffled(4)
		}),
		with(base("ipv6_reversed", "an IPv6 knock in reverse order"), func(s *spec) {
			ipv6(s, "2001:db8::7")
			s.body = reversed
		}),
		with(base("ipv6_duplicated_shuffled", "an IPv6 knock sent twice, everything shuffled"), func(s *spec) {
			ipv6(s, "2001:db8::7")
			s.body = twiceShuffled(5)
		}),
	)

	// The worked examples of SPEC.md Appendix B and the passphrase example
	// of §3.2, with their exact inputs.
	var seqKey crypto.Key
	var seqRealmKey crypto.RealmKey
	for i := range seqKey {
		seqKey[i], seqRealmKey[i] = byte(i), byte(0x20+i)
	}
	exampleB1 := func(name, comment string) spec {
		return with(base(name, comment), func(s *spec) {
			s.key, s.realm, s.index = seqKey, "example.org", 0
			s.fixedNonce = true
			s.knock.Nonce = [4]byte{1, 2, 3, 4}
		})
	}
	add(
		exampleB1("spec_example_b1", "SPEC.md Appendix B.1: mode source, no realm key, key bytes 00..1f"),
		fail(with(exampleB1("spec_example_b1_stale", "SPEC.md Appendix B.1 received at 1767225661, one second too late"), func(s *spec) {
			s.recvTime = t0 + 61
		}), crypto.ErrStale),
		fail(with(exampleB1("spec_example_b1_future", "SPEC.md Appendix B.1 received at 1767225539, one second too early"), func(s *spec) {
			s.recvTime = t0 - 61
		}), crypto.ErrFuture),
		with(exampleB1("spec_example_b2", "SPEC.md Appendix B.2: mode ipv4, realm key bytes 20..3f, user 513, close, two CTR blocks"), func(s *spec) {
			s.realmKey = &seqRealmKey
			s.index = 513
			ipv4(s, "192.0.2.1")
			s.knock.Action, s.knock.Proto, s.knock.Port, s.knock.Duration = crypto.ActionClose, ports.UDP, 51820, 0
			s.knock.Nonce = [4]byte{0xde, 0xad, 0xbe, 0xef}
		}),
		with(exampleB1("spec_example_passphrase", "the passphrase example of SPEC.md §3.2: a passphrase key, Argon2id salted with realm example.org and index 0"), func(s *spec) {
			s.passphrase = pass1
		}),
		fail(with(exampleB1("bad_tag_wrong_passphrase", "the receiver derives user 0's key from another passphrase"), func(s *spec) {
			s.passphrase = pass1
			s.recvPassphrase = pass2
		}), crypto.ErrBadTag),
	)

	// Negative: decoding the port sequence (SPEC.md §10.1).
	add(
		fail(with(base("outside_span_below", "one extra packet to the port just below the span"), func(s *spec) {
			s.body = extraPort(5, func(s encoding.Span) uint16 { return s.Base - 1 })
		}), encoding.ErrOutsideSpan),
		fail(with(base("outside_span_above", "one extra packet to the port just above the span"), func(s *spec) {
			s.body = extraPort(24, func(s encoding.Span) uint16 { return s.Last() + 1 })
		}), encoding.ErrOutsideSpan),
		fail(with(base("outside_span_base_1024", "span base 1024 and one extra packet to port 1023"), func(s *spec) {
			s.spanBase = 1024
			s.body = extraPort(0, func(s encoding.Span) uint16 { return s.Base - 1 })
		}), encoding.ErrOutsideSpan),
		fail(with(base("conflicting_duplicate", "a second packet for position 5 carries another byte"), func(s *spec) {
			s.body = conflict(5, 0x01)
		}), encoding.ErrConflict),
		fail(with(base("conflicting_duplicate_header", "a second packet for position 0 carries another valid header (ipv4)"), func(s *spec) {
			s.body = conflict(0, 0x01)
		}), encoding.ErrConflict),
		fail(with(base("truncated_missing_position", "position 10 never arrives"), func(s *spec) { s.body = drop(10) }), encoding.ErrTruncated),
		fail(with(base("truncated_missing_header", "position 0, the header, never arrives"), func(s *spec) { s.body = drop(0) }), encoding.ErrTruncated),
		fail(with(base("truncated_missing_last", "the last position (the tag's last byte) never arrives"), func(s *spec) {
			s.body = drop(-1)
		}), encoding.ErrTruncated),
		fail(with(base("truncated_header_only", "only the header arrives"), func(s *spec) { s.body = keepFirst(1) }), encoding.ErrTruncated),
		fail(with(base("truncated_empty", "nothing arrives at all"), func(s *spec) { s.body = empty }), encoding.ErrTruncated),
		fail(with(base("truncated_header_says_ipv6", "a source knock whose header is changed to ipv6 mode: positions 24..39 are missing"), func(s *spec) {
			s.body = withByte(0, crypto.Header(crypto.ModeIPv6))
		}), encoding.ErrTruncated),
		fail(with(base("extra_packets_source", "one extra packet at position 24, just past a source knock"), func(s *spec) {
			s.body = extra(24, 0)
		}), encoding.ErrExtraPackets),
		fail(with(base("extra_packets_ipv4_position_39", "an IPv4 knock plus a packet at position 39, the span's last"), func(s *spec) {
			ipv4(s, "203.0.113.9")
			s.body = extra(39, 0xff)
		}), encoding.ErrExtraPackets),
		fail(with(base("extra_packets_header_says_source", "an IPv4 knock whose header is changed to source mode: positions 24..27 are extra"), func(s *spec) {
			ipv4(s, "203.0.113.9")
			s.body = withByte(0, crypto.Header(crypto.ModeSource))
		}), encoding.ErrExtraPackets),
		fail(with(base("unknown_version_0", "the header byte is changed to 0x00, version 0"), func(s *spec) {
			s.body = withByte(0, 0x00)
		}), crypto.ErrUnknownVersion),
		fail(with(base("unknown_version_2", "the header byte is changed to 0x20, version 2 source mode"), func(s *spec) {
			s.body = withByte(0, 0x20)
		}), crypto.ErrUnknownVersion),
		fail(with(base("unknown_version_15", "the header byte is changed to 0xf1"), func(s *spec) {
			s.body = withByte(0, 0xf1)
		}), crypto.ErrUnknownVersion),
		fail(with(base("malformed_header_mode_4", "the header byte is changed to 0x14: version 1, mode 4 does not exist"), func(s *spec) {
			s.body = withByte(0, 0x14)
		}), crypto.ErrMalformed),
		fail(with(base("malformed_header_mode_15", "the header byte is changed to 0x1f: version 1, mode 15"), func(s *spec) {
			s.body = withByte(0, 0x1f)
		}), crypto.ErrMalformed),
	)

	// Negative: opening the knock (SPEC.md §8).
	outerNone := crypto.OuterKey(nil)
	add(
		fail(with(base("unknown_user", "the receiver knows key A as user 8, the knock says user 7"), func(s *spec) {
			s.recvIndex = u16(8)
		}), crypto.ErrUnknownUser),
		fail(with(base("unknown_user_field_bit_flipped", "the user field's lowest bit is flipped in transit: it decodes to user 6"), func(s *spec) {
			s.body = flipBit(2, 0x01)
		}), crypto.ErrUnknownUser),
		with(base("tag_bit_flipped", "the tag's lowest bit is flipped in transit; the user field's pad depends on the tag, so the index decodes to another value: %s"), func(s *spec) {
			s.computeExpect = true
			s.body = flipBit(-1, 0x01)
		}),
		fail(with(base("bad_tag_tag_bit_flipped", "the tag's lowest bit is flipped and the user field rewritten under the public outer key (no realm key), so user 7 is found and the tag fails"), func(s *spec) {
			s.body = flipTagBitFixUser(7, outerNone, crypto.TagSize-1, 0x01)
		}), crypto.ErrBadTag),
		fail(with(base("bad_tag_tag_high_bit_flipped", "the tag's first byte has its high bit flipped, user field rewritten under the public outer key"), func(s *spec) {
			s.body = flipTagBitFixUser(7, outerNone, 0, 0x80)
		}), crypto.ErrBadTag),
		fail(with(base("bad_tag_ciphertext_bit_flipped", "the first ciphertext byte (position 3) has its lowest bit flipped"), func(s *spec) {
			s.body = flipBit(3, 0x01)
		}), crypto.ErrBadTag),
		fail(with(base("bad_tag_ciphertext_last_byte", "an IPv6 knock's last ciphertext byte (position 31) has its high bit flipped"), func(s *spec) {
			ipv6(s, "2001:db8::7")
			s.body = flipBit(31, 0x80)
		}), crypto.ErrBadTag),
		fail(with(base("bad_tag_wrong_key", "the receiver has another key for user 7"), func(s *spec) {
			s.recvKey = &keyB
		}), crypto.ErrBadTag),
		fail(with(base("bad_tag_wrong_realm", "the receiver's realm is called home, the sender's office; with no realm key both have the same outer key, so only the tag tells"), func(s *spec) {
			s.recvRealm = "home"
		}), crypto.ErrBadTag),
		fail(with(base("bad_tag_wrong_realm_same_key", "same realm key on both sides, but the realm names differ"), func(s *spec) {
			s.realmKey = rk1
			s.recvRealm = "office2"
		}), crypto.ErrBadTag),
		with(base("wrong_realm_key", "the receiver's realm key differs from the sender's, so the user field decodes under another outer key: %s"), func(s *spec) {
			s.computeExpect = true
			s.realmKey = rk1
			s.recvRealmKey = rk2.Encode()
		}),
		with(base("wrong_realm_key_receiver_has_none", "the sender uses a realm key, the receiver's realm has none: %s"), func(s *spec) {
			s.computeExpect = true
			s.realmKey = rk1
			s.recvRealmKey = vectors.NoRealmKey
		}),
		with(base("wrong_realm_key_sender_has_none", "the sender uses no realm key, the receiver's realm has one: %s"), func(s *spec) {
			s.computeExpect = true
			s.recvRealmKey = rk1.Encode()
		}),
	)

	// Negative: the time window (SPEC.md §7.1).
	for _, w := range []struct {
		window int
		name   string
	}{{0, "window"}, {5, "window_5"}, {600, "window_600"}} {
		span := w.window
		if span == 0 {
			span = crypto.DefaultWindow
		}
		add(
			fail(with(base("stale_"+w.name+"_plus_one", "sealed one second more than a window ago"), func(s *spec) {
				s.recvWindow, s.recvTime = w.window, t0+int64(span)+1
			}), crypto.ErrStale),
			fail(with(base("future_"+w.name+"_plus_one", "sealed one second more than a window ahead of the receiver's clock"), func(s *spec) {
				s.recvWindow, s.recvTime = w.window, t0-int64(span)-1
			}), crypto.ErrFuture),
		)
	}
	add(
		fail(with(base("stale_timestamp_zero", "timestamp 0 received in 2026"), func(s *spec) { s.knock.Time = 0 }), crypto.ErrStale),
		fail(with(base("future_timestamp_max", "timestamp 4294967295 received in 2026"), func(s *spec) {
			s.knock.Time = 4294967295
		}), crypto.ErrFuture),
	)

	// Negative: fields out of range (SPEC.md §5.3). The plaintext is made by
	// hand and sealed under the right key, so only the field check fails.
	field := func(name, comment string, f func(s *spec), edit func(p []byte)) spec {
		return fail(with(base(name, comment), func(s *spec) {
			if f != nil {
				f(s)
			}
			s.handmade = edit
			if edit == nil {
				s.handmade = func([]byte) {}
			}
		}), crypto.ErrFieldRange)
	}
	add(
		field("field_action_0", "open tcp/22 for 3600 s, but the action nibble is 0 (flags 0x00)", nil, func(p []byte) { p[0] = 0x00 }),
		field("field_action_3", "action 3 (flags 0x30)", nil, func(p []byte) { p[0] = 0x30 }),
		field("field_action_15", "action 15 over udp (flags 0xf1)", nil, func(p []byte) { p[0] = 0xf1 }),
		field("field_reserved_bit_1", "open tcp with reserved flag bit 1 set (flags 0x12)", nil, func(p []byte) { p[0] = 0x12 }),
		field("field_reserved_bit_2", "open udp with reserved flag bit 2 set (flags 0x15)", nil, func(p []byte) { p[0] = 0x15 }),
		field("field_reserved_bit_3", "close tcp with reserved flag bit 3 set (flags 0x28, duration 0)", nil, func(p []byte) {
			p[0], p[3], p[4] = 0x28, 0, 0
		}),
		field("field_port_zero", "open tcp port 0", func(s *spec) { s.knock.Port = 0 }, nil),
		field("field_open_duration_zero", "open tcp/22 with duration 0", func(s *spec) { s.knock.Duration = 0 }, nil),
		field("field_close_duration_nonzero", "close tcp/22 with duration 1", func(s *spec) {
			s.knock.Action, s.knock.Duration = crypto.ActionClose, 1
		}, nil),
		field("field_ipv4_unspecified", "open tcp/22 for 0.0.0.0", func(s *spec) { ipv4(s, "0.0.0.0") }, nil),
		field("field_ipv4_multicast", "open tcp/22 for 224.0.0.1, multicast", func(s *spec) { ipv4(s, "224.0.0.1") }, nil),
		field("field_ipv4_multicast_last", "open tcp/22 for 239.255.255.255, the last multicast address", func(s *spec) {
			ipv4(s, "239.255.255.255")
		}, nil),
		field("field_ipv4_broadcast", "open tcp/22 for 255.255.255.255, the limited broadcast", func(s *spec) {
			ipv4(s, "255.255.255.255")
		}, nil),
		field("field_ipv6_unspecified", "open tcp/22 for ::", func(s *spec) { ipv6(s, "::") }, nil),
		field("field_ipv6_multicast", "open tcp/22 for ff02::1, multicast", func(s *spec) { ipv6(s, "ff02::1") }, nil),
		field("field_ipv6_ipv4_mapped", "open tcp/22 for ::ffff:1.2.3.4: IPv4-mapped addresses must use ipv4 mode", func(s *spec) {
			ipv6(s, "::ffff:1.2.3.4")
		}, nil),
	)

	// Mode bound (SPEC.md §5.1, §6.2): the address is under the tag, not
	// in the knock; receiver-source is the packets' observed source.
	add(
		with(base("bound_ipv4", "open tcp/22 in mode bound: 198.51.100.23 is under the tag and the packets come from it; 24 packets"), func(s *spec) {
			bound(s, "198.51.100.23")
			s.recvSource = "198.51.100.23"
		}),
		with(base("bound_ipv6", "open udp/51820 in mode bound for a global IPv6 source"), func(s *spec) {
			bound(s, "2001:db8:85a3::8a2e:370:7334")
			s.knock.Proto, s.knock.Port, s.knock.Duration = ports.UDP, 51820, 900
			s.recvSource = "2001:db8:85a3::8a2e:370:7334"
		}),
		with(base("bound_close", "close tcp/22 in mode bound, realm key"), func(s *spec) {
			bound(s, "192.0.2.1")
			s.realmKey = rk1
			s.knock.Action, s.knock.Duration = crypto.ActionClose, 0
			s.recvSource = "192.0.2.1"
		}),
		with(base("bound_source_ipv4_mapped", "bound to 198.51.100.23, seen as ::ffff:198.51.100.23: both are the same 16 bytes under the tag"), func(s *spec) {
			bound(s, "198.51.100.23")
			s.recvSource = "::ffff:198.51.100.23"
		}),
		with(base("bound_source_default", "no receiver-source: the packets come from the bound address"), func(s *spec) {
			bound(s, "203.0.113.9")
		}),
		fail(with(base("bound_wrong_source", "bound to 198.51.100.23, seen from 198.51.100.24 (a racer, a NAT, a lying STUN server): bad tag, so no replay ID is recorded"), func(s *spec) {
			bound(s, "198.51.100.23")
			s.recvSource = "198.51.100.24"
		}), crypto.ErrBadTag),
		fail(with(base("bound_wrong_family", "bound to 192.0.2.1, seen from 2001:db8::1"), func(s *spec) {
			bound(s, "192.0.2.1")
			s.recvSource = "2001:db8::1"
		}), crypto.ErrBadTag),
		fail(with(base("bound_source_mode_same_fields", "the source-mode knock of the same fields with header 0x13: the header is under the tag"), func(s *spec) {
			s.recvSource = "198.51.100.23"
			s.body = withByte(0, 0x13)
		}), crypto.ErrBadTag),
		fail(with(base("bound_stale", "mode bound, right source, one second too late"), func(s *spec) {
			bound(s, "198.51.100.23")
			s.recvSource = "198.51.100.23"
			s.recvTime = t0 + 61
		}), crypto.ErrStale),
		fail(with(base("bound_handmade_port_zero", "mode bound, hand-made plaintext with port 0: the tag verifies, the field check fails"), func(s *spec) {
			bound(s, "198.51.100.23")
			s.recvSource = "198.51.100.23"
			s.knock.Port = 0
			s.handmade = func([]byte) {}
		}), crypto.ErrFieldRange),
	)

	// Receiver times at the ends of §12's signed 64-bit range: the window
	// check must not overflow (SPEC.md §7.1).
	add(
		fail(with(base("receiver_time_min", "the most negative receiver time: the knock is in the future, not stale through an overflow of now - W"), func(s *spec) {
			s.recvTime = math.MinInt64
		}), crypto.ErrFuture),
		fail(with(base("receiver_time_max", "the largest receiver time: stale, not future through an overflow of now + W"), func(s *spec) {
			s.recvTime = math.MaxInt64
		}), crypto.ErrStale),
		fail(with(base("receiver_time_negative", "receiver time -1, knock at the largest time 4294967295"), func(s *spec) {
			s.knock.Time = math.MaxUint32
			s.recvTime = -1
		}), crypto.ErrFuture),
	)

	// Key text ignores letter case (SPEC.md §3.1, §12).
	add(
		with(base("key_text_upper_case", "the user key's text in upper case: the same key"), func(s *spec) {
			s.keyText = strings.ToUpper
		}),
		with(base("key_text_mixed_case", "the user key's text in mixed case: the same key"), func(s *spec) {
			s.keyText = func(t string) string {
				b := []byte(t)
				for i := range b {
					if i%3 == 0 && 'a' <= b[i] && b[i] <= 'z' {
						b[i] -= 'a' - 'A'
					}
				}
				return string(b)
			}
		}),
	)

	// Negative with two faults: the first in the receiver's order wins.
	add(
		fail(with(base("order_outside_span_before_version", "header changed to 0x20 and one packet below the span: the port check comes first"), func(s *spec) {
			s.body = func(knock []byte, sp encoding.Span) []uint16 {
				p := withByte(0, 0x20)(knock, sp)
				return append(p, sp.Base-1)
			}
		}), encoding.ErrOutsideSpan),
		fail(with(base("order_conflict_before_truncated", "position 3 conflicts and position 9 is missing: conflicts are checked before completeness"), func(s *spec) {
			s.body = func(knock []byte, sp encoding.Span) []uint16 {
				p := drop(9)(knock, sp)
				return append(p, sp.Port(3, knock[3]^0x40))
			}
		}), encoding.ErrConflict),
		fail(with(base("order_outside_span_before_conflict", "a conflicting packet for position 2, then a packet above the span: a port outside the span is reported first, whatever the arrival order"), func(s *spec) {
			s.body = func(knock []byte, sp encoding.Span) []uint16 {
				p := append(sent(knock, sp), sp.Port(2, knock[2]^0x10))
				return append(p, sp.Last()+1)
			}
		}), encoding.ErrOutsideSpan),
		fail(with(base("order_outside_span_arrives_first", "a packet above the span, then a conflicting packet for position 2"), func(s *spec) {
			s.body = func(knock []byte, sp encoding.Span) []uint16 {
				p := append(sent(knock, sp), sp.Last()+1)
				return append(p, sp.Port(2, knock[2]^0x10))
			}
		}), encoding.ErrOutsideSpan),
		fail(with(base("order_version_before_truncated", "header changed to 0x20 and position 5 missing: the header is checked before completeness"), func(s *spec) {
			s.body = func(knock []byte, sp encoding.Span) []uint16 {
				k := append([]byte(nil), knock...)
				k[0] = 0x20
				return drop(5)(k, sp)
			}
		}), crypto.ErrUnknownVersion),
		fail(with(base("order_extra_before_truncated", "a packet at position 24 and position 5 missing: extra packets are checked before missing ones"), func(s *spec) {
			s.body = func(knock []byte, sp encoding.Span) []uint16 {
				return append(drop(5)(knock, sp), sp.Port(24, 0x42))
			}
		}), encoding.ErrExtraPackets),
		fail(with(base("order_unknown_user_before_stale", "unknown user and stale: the user lookup comes first"), func(s *spec) {
			s.recvIndex, s.recvTime = u16(8), t0+3600
		}), crypto.ErrUnknownUser),
		fail(with(base("order_bad_tag_before_stale", "wrong key and stale: the tag comes first"), func(s *spec) {
			s.recvKey, s.recvTime = &keyB, t0+3600
		}), crypto.ErrBadTag),
		field("order_field_before_stale", "port 0 and stale: the field check comes first", func(s *spec) {
			s.knock.Port = 0
			s.recvTime = t0 + 3600
		}, nil),
		fail(with(base("order_field_before_future", "open with duration 0 and from the future: the field check comes first"), func(s *spec) {
			s.knock.Duration = 0
			s.handmade = func([]byte) {}
			s.recvTime = t0 - 3600
		}), crypto.ErrFieldRange),
	)
	return v
}
