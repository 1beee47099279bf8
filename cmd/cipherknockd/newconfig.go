package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/dist"
)

type newConfigCmd struct {
	Config string `short:"c" placeholder:"FILE" help:"File to create, mode 0600; it must not exist (default: ${default_config})."`
	Realm  string `help:"Realm name (default: this host's name)."`
}

var exampleRealmLine = regexp.MustCompile(`(?m)^realm = ` + regexp.QuoteMeta(dist.ExampleRealm) + `( *)`)

// Run writes the example configuration with the realm set, for make install
// and the package's postinst, and never replaces a file.
func (c *newConfigCmd) Run(e *env) error {
	file := c.Config
	if file == "" {
		file = DefaultConfig
	}
	realm := c.Realm
	if realm == "" {
		realm = hostRealm()
	}
	if err := crypto.CheckRealm(realm); err != nil {
		return configError{fmt.Errorf("--realm: %v", err)}
	}
	if realm == dist.ExampleRealm {
		return configError{fmt.Errorf("--realm: %s is the example's realm name", dist.ExampleRealm)}
	}
	m := exampleRealmLine.FindSubmatchIndex(dist.ExampleConfig)
	if m == nil {
		return errors.New("the built-in example configuration has no realm line")
	}
	// Keep the line's comment in its column where the name allows.
	spaces := max(m[3]-m[2]-(len(realm)-len(dist.ExampleRealm)), 1)
	if m[3] == m[2] {
		spaces = 0 // nothing follows the name
	}
	var b bytes.Buffer
	b.Write(dist.ExampleConfig[:m[0]])
	b.WriteString("realm = " + realm + strings.Repeat(" ", spaces))
	b.Write(dist.ExampleConfig[m[1]:])
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return configError{fmt.Errorf("%s exists: new-config never replaces a file", file)}
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "cipherknockd: wrote %s (realm %s); it needs the key file %s before check-config passes\n",
		file, realm, filepath.Join(filepath.Dir(file), "alice.key"))
	return nil
}

// hostRealm derives a realm name from the host's name, or makes one up.
func hostRealm() string {
	h, _ := os.Hostname()
	var b strings.Builder
	for i := 0; i < len(h) && b.Len() < 64; i++ {
		c := h[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' {
			b.WriteByte(c)
		}
	}
	r := b.String()
	if r == "" || r == "localhost" || crypto.CheckRealm(r) != nil {
		var n [4]byte
		rand.Read(n[:])
		r = "cipherknock-" + hex.EncodeToString(n[:])
	}
	return r
}
