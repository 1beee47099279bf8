// Package vectors reads, writes and checks the knock protocol's test vectors
// (SPEC.md §12). The vectors themselves live in testdata/vectors and are
// embedded in the root package; the program in gen writes them.
//
// A vector is a text file named after its case (source_tcp_basic,
// stale_window_plus_one). It starts with header lines "key: value", one per
// key, then a blank line, then the body: the destination ports a receiver
// observed, decimal, separated by white space. An unknown or repeated header
// key makes the vector invalid.
//
// The header holds the sender's inputs (key or passphrase, user-index,
// realm, realm-key, mode, the plaintext fields, span-base), the receiver's
// configuration (receiver-* keys override the sender's values; receiver-time
// is required and may be any int64, receiver-window defaults to 60 s,
// receiver-realm-key "none" removes the realm key, receiver-source is the
// packets' source address, which a mode-bound knock's tag must cover), every intermediate (mac-key, enc-key, outer-key,
// plaintext, tag, user-field, ciphertext, knock: lowercase hex), the ports
// as sent in position order, and the expected outcome: "success" or the
// name of the first failure the receiver meets (SPEC.md §8, §10.1). A vector
// with none of the plaintext fields (action, protocol, port, duration,
// timestamp, nonce, address) carries a hand-made plaintext, sealed as it is,
// to exercise the receiver's field checks; fields given as fields must be in
// range, or the vector is invalid. In mode bound the address header is the
// address under the tag, present with or without the fields. Key text is
// read in any letter case.
//
// A receiver without receiver-key or receiver-passphrase holds the sender's
// key bytes; with receiver-passphrase it derives the key with its own realm
// name and user index.
//
// [Check] recomputes every intermediate from the inputs with the crypto and
// encoding packages and, independently, with the standard library following
// the specification's text (§4, §6); then it decodes the body and opens the
// knock, both with those packages and with a receiver written from the
// pseudo-code of §10.1 and §8, and requires both to reach the class named by
// expect. On success it also compares the opened fields with the inputs and
// feeds the body to an [encoding.Assembler], which must reach the same
// knock. It does not use the testing package, so that a program can check
// its embedded copy of the vectors with [CheckFS].
//
// Stream vectors (SPEC.md §12.1, testdata/streams, written by the program in
// streamgen) specify the assembler of §10.2: a packet stream from several
// sources with arrival times, the receiver's configuration and clock, and
// after each packet the readings it made the receiver open and their
// outcome. [RunStream] plays a stream through per-source
// [encoding.Assembler]s, an opener and a replay set; [CheckStream] and
// [CheckStreamFS] compare the opens with the vector's.
package vectors
