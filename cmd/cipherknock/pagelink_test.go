package main

import (
	"strings"
	"testing"
)

func TestPageLink(t *testing.T) {
	uri := "cipherknock://[2001:db8::1]/?realm=r&user=0&key=ck-key-x&port=22&proto=tcp&dur=3600&base=20480"
	for _, tc := range []struct{ page, want, err string }{
		{"https://knock.example.org/", "https://knock.example.org/#cipherknock://%5B2001:db8::1%5D/?realm=r", ""},
		{"https://knock.example.org/ck/index.html", "https://knock.example.org/ck/index.html#cipherknock://", ""},
		{"http://127.0.0.1:8765/", "http://127.0.0.1:8765/#", ""},
		{"http://localhost:8765/", "http://localhost:8765/#", ""},
		{"http://[::1]:8765/", "http://[::1]:8765/#", ""},
		{"http://knock.example.org/", "", "over https"},
		{"ftp://knock.example.org/", "", "over https"},
		{"https://knock.example.org/#old", "", "no # part"},
		{"https://user@knock.example.org/", "", "no # part"},
		{"knock.example.org", "", "no # part"},
	} {
		got, err := pageLink(tc.page, uri)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want %q", tc.page, err, tc.err)
		case tc.err == "" && (err != nil || !strings.HasPrefix(got, tc.want)):
			t.Errorf("%s: %q, %v; want prefix %q", tc.page, got, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "ck-key-") {
			t.Errorf("error holds the key: %v", err)
		}
	}
}

// TestPageLinkQR: the longest usual link (IPv6 host, realm key, every
// optional parameter) still fits a QR code a phone camera reads.
func TestPageLinkQR(t *testing.T) {
	uri := qrTestURI + "&addr=2001:db8::1&via=tcp&rep=8&stun=stun.example.org:3478,192.0.2.1:3478"
	link, err := pageLink("https://knock.example.org/cipherknock/", uri)
	if err != nil {
		t.Fatal(err)
	}
	code, err := encodeQR(link)
	if err != nil {
		t.Fatal(err)
	}
	if code.Size > 73 { // version 14
		t.Errorf("a %d-byte link needs a %d-module QR code", len(link), code.Size)
	}
}
