package main

import (
	"net/netip"
	"net/url"
	"strings"
)

// pageLink returns the link that opens the knock page at page with the
// profile URI in its # fragment, which browsers never send to the server.
// The page must be https (or http on a loopback address, for cipherknock
// lab) and carry no fragment of its own.
func pageLink(page, uri string) (string, error) {
	u, err := url.Parse(page)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" || strings.Contains(page, "#") {
		return "", usagef("--page: want the knock page's URL, like https://knock.example.org/ (no # part)")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && (u.Hostname() == "localhost" || isLoopback(u.Hostname())):
	default:
		return "", usagef("--page: the knock page must be served over https (http only on localhost): browsers hide WebCrypto elsewhere")
	}
	// Brackets of an IPv6 host are not fragment characters (RFC 3986); the
	// page turns them back.
	frag := strings.NewReplacer("[", "%5B", "]", "%5D").Replace(uri)
	return page + "#" + frag, nil
}

func isLoopback(h string) bool {
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}
