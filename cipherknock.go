// Package cipherknock is encrypted port knocking: a client seals a short
// knock under a shared key and sends it as a sequence of packets to closed
// ports, and a daemon that sniffs them opens a firewall door for a limited
// time. SPEC.md specifies protocol version 1; the packages crypto and
// encoding implement it.
//
// This root package embeds the spec test vectors (SPEC.md §12) and stream
// vectors (§12.1), so that the
// client and the tests check the same copy; internal/vectors checks them and
// its gen program writes them (go generate).
package cipherknock

import "embed"

//go:generate go run ./internal/vectors/gen -out testdata/vectors
//go:generate go run ./internal/vectors/streamgen -out testdata/streams

// Vectors holds the test vectors, one file per case, under testdata/vectors.
//
//go:embed testdata/vectors
var Vectors embed.FS

// Streams holds the stream vectors (SPEC.md §12.1), one file per case,
// under testdata/streams.
//
//go:embed testdata/streams
var Streams embed.FS
