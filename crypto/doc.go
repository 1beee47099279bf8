// Package crypto implements the cryptographic layer of the cipherknock knock
// protocol, version 1, as specified in SPEC.md: keys and their text encoding
// (§3), key derivation (§4), the knock plaintext and its address modes (§5),
// sealing and opening a knock with the SIV-style construction (§6), the
// time window (§7.1), and the receiver's validation order and failure
// classes (§8). In mode bound the tag covers the source address without
// sending it; [Opener.OpenFrom] checks it against the packets' observed
// source.
//
// A knock is a short byte string: a clear header byte, a two-byte user field
// hidden under the realm's outer key, the plaintext fields encrypted with
// AES-256-CTR, and a 64-bit HMAC-SHA-256 tag that doubles as the CTR IV.
// The encoding package maps those bytes onto destination ports.
//
// Opening a knock costs one AES block for the user field, one map lookup,
// two AES blocks of keystream and one HMAC, whatever the number of users,
// and allocates nothing. An [Opener] keeps scratch space and must not be used
// by two goroutines at once; the [Realm] and [User] values it refers to are
// immutable and may be shared.
//
// # Performance
//
// Open, and the rejection of garbage against many users, allocate nothing;
// the benchmarks (go test -bench=. -benchmem) measure them, and README's
// Performance section gives the figures, dated and with the machine.
package crypto
