package vectors_test

import (
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/internal/vectors"
)

// setHeader returns the vector file text with header key k set to v (the
// line replaced, or added at the end of the header).
func setHeader(text, k, v string) string {
	head, body, _ := strings.Cut(text, "\n\n")
	var lines []string
	for _, l := range strings.Split(head, "\n") {
		if !strings.HasPrefix(l, k+": ") {
			lines = append(lines, l)
		}
	}
	return strings.Join(append(lines, k+": "+v), "\n") + "\n\n" + body
}

// headerValue returns the value of header key k in text, or def.
func headerValue(text, k, def string) string {
	head, _, _ := strings.Cut(text, "\n\n")
	for _, l := range strings.Split(head, "\n") {
		if v, ok := strings.CutPrefix(l, k+": "); ok {
			return v
		}
	}
	return def
}

// nonCanonical returns spellings of the integer v that SPEC.md §12
// forbids: a leading zero, a plus sign, and for zero a minus sign.
func nonCanonical(v string) []string {
	out := []string{"0" + v, "+" + v, " " + v, v + "\t"}
	if v == "0" {
		out = append(out, "-0", "00")
	}
	if strings.HasPrefix(v, "-") {
		out = append(out, "-0"+v[1:])
	}
	return out
}

// TestVectorNumbersCanonical: every integer header of an ordinary vector
// (§12) written with a leading zero, a plus sign or white space makes the
// file invalid, while the canonical spelling checks.
func TestVectorNumbersCanonical(t *testing.T) {
	files := embedded(t)
	for _, tc := range []struct{ file, key, def string }{
		{"bad_tag_ciphertext_bit_flipped", "user-index", ""},
		{"bad_tag_ciphertext_bit_flipped", "port", ""},
		{"bad_tag_ciphertext_bit_flipped", "duration", ""},
		{"bad_tag_ciphertext_bit_flipped", "timestamp", ""},
		{"bad_tag_ciphertext_bit_flipped", "span-base", ""},
		{"bad_tag_ciphertext_bit_flipped", "receiver-time", ""},
		{"future_window_5_plus_one", "receiver-window", ""},
		{"unknown_user", "receiver-user-index", ""},
		{"duration_1", "receiver-window", "60"},
	} {
		text := string(files[tc.file])
		if text == "" {
			t.Fatalf("no vector %s", tc.file)
		}
		v := headerValue(text, tc.key, tc.def)
		if v == "" {
			t.Fatalf("%s has no %s", tc.file, tc.key)
		}
		check := func(text string) error {
			vec, err := vectors.Parse(tc.file, []byte(text))
			if err != nil {
				return err
			}
			return vectors.Check(vec)
		}
		if err := check(setHeader(text, tc.key, v)); err != nil {
			t.Fatalf("%s with %s: %s written canonically: %v", tc.file, tc.key, v, err)
		}
		for _, bad := range nonCanonical(v) {
			if err := check(setHeader(text, tc.key, bad)); err == nil {
				t.Errorf("%s: %s: %q accepted", tc.file, tc.key, bad)
			}
		}
	}
}

// TestStreamNumbersCanonical: the same for the integer headers of a
// stream vector (§12.1): user-index, span-base, receiver-time,
// receiver-window, assembler-timeout and recent.
func TestStreamNumbersCanonical(t *testing.T) {
	text := string(streamFiles(t)["inject_before"])
	if text == "" {
		t.Fatal("no stream vector inject_before")
	}
	check := func(text string) error {
		s, err := vectors.ParseStream("inject_before", []byte(text))
		if err != nil {
			return err
		}
		return vectors.CheckStream(s)
	}
	for _, kv := range [][2]string{
		{"user-index", ""}, {"receiver-time", ""},
		{"span-base", "20480"}, {"receiver-window", "60"}, {"assembler-timeout", "10000"}, {"recent", "200"},
	} {
		v := headerValue(text, kv[0], kv[1])
		if err := check(setHeader(text, kv[0], v)); err != nil {
			t.Fatalf("%s: %s written canonically: %v", kv[0], v, err)
		}
		for _, bad := range nonCanonical(v) {
			if err := check(setHeader(text, kv[0], bad)); err == nil {
				t.Errorf("%s: %q accepted", kv[0], bad)
			}
		}
	}
}
