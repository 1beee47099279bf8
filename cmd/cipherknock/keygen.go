package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/ports"
	"github.com/cipherknock/cipherknock/profile"
)

type keygenCmd struct {
	Host     string `required:"" help:"The server's DNS name or IP address."`
	Realm    string `required:"" help:"The server's realm name."`
	User     int    `default:"0" help:"User index given to this key on the server, 0..65535."`
	UserName string `help:"User's name in the server's configuration (default: $USER, else userINDEX; keygen says which)."`
	Name     string `help:"Profile name (default: the host)."`

	Port     int           `default:"22" help:"Port to open."`
	Proto    string        `default:"tcp" enum:"tcp,udp" help:"Protocol of that port: tcp or udp."`
	Duration time.Duration `help:"How long the port stays open (default: 30s for tcp/22, since ssh keeps its session through connection tracking; 1h for other ports)."`
	Base     int           `default:"20480" help:"First port of the knock span."`
	Address  string        `default:"source" help:"Address to open: source, auto or an IP address."`
	Via      string        `default:"udp" enum:"udp,tcp" help:"Send knocks as udp datagrams or tcp SYNs."`
	Repeat   int           `default:"1" help:"Send each packet N times."`
	STUN     string        `name:"stun" placeholder:"HOST:PORT,..." help:"STUN servers for address auto."`

	RealmKeyFile   string `placeholder:"FILE" help:"Read the realm's key from FILE (- for standard input); default: $CIPHERKNOCK_REALM_KEY."`
	NewRealmKey    bool   `help:"Make a new realm key too (for a new server) and print its server entry."`
	PassphraseFile string `placeholder:"FILE" help:"Derive the key from the passphrase in FILE (- for standard input) with Argon2id instead of making a random one; only the derived key is stored."`
	ServerKey      string `placeholder:"FILE" help:"Write the user's key for the server to FILE, a new file of mode 0600, and print a server entry that names it instead of holding the key (with --new-realm-key, the realm key goes to realm.key beside it)."`
	URIFile        string `name:"uri-file" placeholder:"FILE" help:"Write the profile URI to FILE, a new file of mode 0600, instead of printing it and its QR code."`
	NoSave         bool   `help:"Do not store the profile here (with --uri-file: for another machine or a phone)."`
	Force          bool   `help:"Replace an existing profile of that name."`
	NoQR           bool   `name:"no-qr" help:"Do not print the QR code."`
	Page           string `placeholder:"URL" env:"CIPHERKNOCK_PAGE" help:"URL of your knock page (https://...): also print its link with the profile in the # fragment; the QR code then holds that link."`
	QRInvert       bool   `name:"qr-invert" help:"Draw the QR code for dark text on a light background (the default suits light text on dark)."`
}

// Help shows examples and the exit status under keygen --help.
func (c *keygenCmd) Help() string {
	return `Examples:
  # on the server, for alice: her key straight into the daemon's directory,
  # her profile in a file to hand over (then delete it)
  cipherknock keygen --host gate.example.net --realm gate.example.net \
      --user-name alice --server-key /etc/cipherknock/alice.key \
      --uri-file alice.uri --no-save
  # on alice's own machine: the profile stays here, the key file goes to the server
  cipherknock keygen --host gate.example.net --realm gate.example.net --server-key alice.key

Exit status: 0 when the key and profile were made, 2 on a usage error
(a bad flag, an existing profile or file).`
}

func (c *keygenCmd) Run(a *app) error {
	if c.User < 0 || c.User > 65535 {
		return usagef("--user must be 0..65535")
	}
	if err := crypto.CheckRealm(c.Realm); err != nil {
		return usagef("--realm: %v", err)
	}
	if err := profile.CheckHost(c.Host); err != nil {
		return usagef("--host: %v", err)
	}
	if c.Port < 1 || c.Port > 65535 {
		return usagef("--port must be 1..65535")
	}
	if c.Realm == exampleRealm {
		return usagef("--realm: %s is the example configuration's realm name: give the server's realm (cipherknockd check-config prints it)", exampleRealm)
	}
	if c.Duration == 0 {
		c.Duration = time.Hour
		if c.Port == 22 && c.Proto == "tcp" {
			c.Duration = defaultSSHDuration
		}
	}
	if c.Duration%time.Second != 0 || c.Duration < time.Second || c.Duration > crypto.MaxDuration*time.Second {
		return usagef("--duration must be whole seconds from 1s to 18h12m15s")
	}
	if c.Base < encoding.MinBase || c.Base > encoding.MaxBase {
		return usagef("--base must be %d..%d", encoding.MinBase, encoding.MaxBase)
	}
	nameFrom := ""
	if c.UserName == "" {
		c.UserName, nameFrom = a.getenv("USER"), "$USER"
		if checkUserName(c.UserName) != nil {
			c.UserName, nameFrom = fmt.Sprintf("user%d", c.User), "the user index"
		}
	}
	if err := checkUserName(c.UserName); err != nil {
		return usagef("--user-name: %v", err)
	}
	if c.NewRealmKey && c.RealmKeyFile != "" {
		return usagef("--new-realm-key and --realm-key-file exclude each other")
	}
	if c.NoSave && c.URIFile == "" && a.quiet {
		return usagef("--no-save with --quiet would lose the key: give --uri-file")
	}
	if c.QRInvert && c.NoQR {
		return usagef("--qr-invert and --no-qr exclude each other")
	}
	if (c.QRInvert || c.NoQR) && (c.URIFile != "" || a.json || a.quiet) {
		return usagef("no QR code is printed with --uri-file, --json or --quiet: drop --qr-invert and --no-qr")
	}

	var key crypto.Key
	var err error
	if c.PassphraseFile != "" {
		pass, err := a.readPassphrase(c.PassphraseFile)
		if err != nil {
			return err
		}
		key, err = crypto.PassphraseKey([]byte(pass), c.Realm, uint16(c.User))
		if err != nil {
			return usage(err)
		}
	} else if key, err = crypto.GenerateKey(); err != nil {
		return err
	}
	p := profile.New(c.Host, c.Realm, uint16(c.User), key)
	p.Name = c.Name
	if p.Name == "" {
		p.Name = c.Host
	}
	proto, _ := ports.ParseProto(c.Proto)
	p.Port, p.Proto, p.Duration, p.Base = uint16(c.Port), proto, uint16(c.Duration/time.Second), uint16(c.Base)
	p.Address, p.Via, p.Repeat = c.Address, c.Via, c.Repeat
	if c.STUN != "" {
		p.STUN = strings.Split(c.STUN, ",")
	}
	switch {
	case c.NewRealmKey:
		rk, err := crypto.GenerateRealmKey()
		if err != nil {
			return err
		}
		p.RealmKey = &rk
	default:
		text, err := a.readSecret(c.RealmKeyFile, "CIPHERKNOCK_REALM_KEY", "realm key")
		if err != nil {
			return err
		}
		if text != "" {
			rk, err := crypto.ParseRealmKey(text)
			if err != nil {
				return usagef("bad realm key: %v", err)
			}
			p.RealmKey = &rk
		}
	}
	if err := p.Validate(); err != nil {
		return usage(err)
	}
	uri := p.URI()
	// Check every file first: nothing is written when one is in the way.
	var realmKeyFile string
	if c.ServerKey != "" && c.NewRealmKey {
		realmKeyFile = filepath.Join(filepath.Dir(c.ServerKey), "realm.key")
	}
	for _, f := range []string{c.ServerKey, realmKeyFile, c.URIFile} {
		if _, err := os.Lstat(f); f != "" && err == nil {
			return usagef("%s exists: keygen never replaces a file", f)
		}
	}
	st, err := a.store()
	if err != nil {
		return err
	}
	path := ""
	if !c.NoSave {
		if err := st.Save(p, c.Force); err != nil {
			return usage(err)
		}
		path = filepath.Join(st.Dir, p.Name+profile.Ext)
	}
	entry := serverEntry{p: p, name: c.UserName, newRealm: c.NewRealmKey}
	if c.ServerKey != "" {
		if err := writeSecretFile(c.ServerKey, p.Key.Encode()); err != nil {
			return err
		}
		entry.keyFile = filepath.Base(c.ServerKey)
		if realmKeyFile != "" {
			if err := writeSecretFile(realmKeyFile, p.RealmKey.Encode()); err != nil {
				return err
			}
			entry.realmKeyFile = filepath.Base(realmKeyFile)
		}
	}
	if c.URIFile != "" {
		if err := writeSecretFile(c.URIFile, uri); err != nil {
			return err
		}
	}
	qrText, link := uri, ""
	if c.Page != "" {
		var err error
		if link, err = pageLink(c.Page, uri); err != nil {
			return err
		}
		qrText = link
	}
	if a.json {
		out := map[string]any{"name": p.Name, "path": path, "server": entry.json()}
		if c.URIFile == "" {
			out["uri"] = uri
			if link != "" {
				out["page_link"] = link
			}
		} else {
			out["uri_file"] = c.URIFile
		}
		if c.ServerKey != "" {
			out["server_key_file"] = c.ServerKey
		}
		return a.emit(out)
	}
	if p.RealmKey == nil {
		fmt.Fprintf(a.stderr, "cipherknock: note: no realm key: if the server's [daemon] has realm-key or realm-key-file, give it with --realm-key-file, or the server will not recognise this user\n")
	}
	if a.quiet {
		return nil
	}
	w := a.stdout
	if path != "" {
		fmt.Fprintf(w, "Profile %q saved to %s\n\n", p.Name, path)
	}
	if c.URIFile != "" {
		fmt.Fprintf(w, "Profile URI written to %s (mode 0600; it holds the key): import it on the machine that knocks with\n  cipherknock profile import %s\nthen delete it.\n\n", c.URIFile, filepath.Base(c.URIFile))
	} else {
		fmt.Fprintf(w, "Profile URI (it holds the key: share it only with the phone or machine that knocks):\n%s\n\n", uri)
		if link != "" {
			fmt.Fprintf(w, "Knock page link (it holds the key too; the # part never reaches the server):\n%s\n\n", link)
		}
		if !c.NoQR {
			if err := writeQR(w, qrText, c.QRInvert, a.colorOut()); err != nil {
				return err
			}
			fmt.Fprintln(w)
		}
	}
	if nameFrom != "" {
		fmt.Fprintf(w, "User name %q taken from %s (--user-name sets it).\n", c.UserName, nameFrom)
	}
	if c.ServerKey != "" {
		fmt.Fprintf(w, "Server key written to %s (mode 0600)", c.ServerKey)
		if realmKeyFile != "" {
			fmt.Fprintf(w, ", realm key to %s", realmKeyFile)
		}
		fmt.Fprintf(w, ": keep them, mode 0600, in the directory of cipherknockd.conf.\n")
	}
	fmt.Fprintf(w, "Server side: add to cipherknockd.conf (cipherknockd reload applies it):\n")
	entry.write(w)
	return nil
}

// defaultSSHDuration is keygen's grant for tcp/22: long enough to log in,
// since connection tracking keeps an established session.
const defaultSSHDuration = 30 * time.Second

// exampleRealm is the example configuration's realm name, refused.
const exampleRealm = "example.org"

// writeSecretFile writes line to a new file of mode 0600.
func writeSecretFile(name, line string) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return usagef("cannot create %s: %v", name, errors.Unwrap(err))
	}
	if _, err := fmt.Fprintln(f, line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// checkUserName accepts the user names of the daemon's [user NAME]
// sections: 1..64 letters, digits, '.', '-', '_' and '@'.
func checkUserName(s string) error {
	if len(s) == 0 || len(s) > 64 {
		return errors.New("must be 1 to 64 bytes long")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == '@') {
			return errors.New("may contain only letters, digits, '.', '-', '_' and '@'")
		}
	}
	return nil
}

// serverEntry is the daemon's side of a profile: its configuration's
// [user NAME] section, and what [daemon] needs. It is never a [daemon]
// section of its own, so that it can be appended to a configuration.
type serverEntry struct {
	p            *profile.Profile
	name         string
	newRealm     bool   // the realm key is new: the server needs it
	keyFile      string // the user's key is in this file, not inline
	realmKeyFile string // the new realm key is in this file
}

func (e serverEntry) json() map[string]any {
	p := e.p
	user := map[string]any{
		"name": e.name, "index": p.User,
		"ports":        fmt.Sprintf("%s/%d", p.Proto, p.Port),
		"max-duration": p.Duration,
	}
	if e.keyFile != "" {
		user["key-file"] = e.keyFile
	} else {
		user["key"] = p.Key.Encode()
	}
	if a := allowAddress(p); a != "" {
		user["allow-address"] = a
	}
	daemon := map[string]any{"realm": p.Realm, "span-base": p.Base}
	if e.newRealm && p.RealmKey != nil {
		if e.realmKeyFile != "" {
			daemon["realm-key-file"] = e.realmKeyFile
		} else {
			daemon["realm-key"] = p.RealmKey.Encode()
		}
	}
	return map[string]any{"daemon": daemon, "user": user}
}

// write prints the section to paste into cipherknockd.conf.
func (e serverEntry) write(w io.Writer) {
	p := e.p
	fmt.Fprintf(w, "# [daemon] needs: realm = %s, span-base = %d\n", p.Realm, p.Base)
	if e.newRealm && p.RealmKey != nil {
		if e.realmKeyFile != "" {
			fmt.Fprintf(w, "# and, in [daemon]: realm-key-file = %s\n", e.realmKeyFile)
		} else {
			fmt.Fprintf(w, "# and, moved into [daemon] and uncommented:\n# realm-key = %s\n", p.RealmKey.Encode())
		}
	}
	fmt.Fprintf(w, "[user %s]\nindex = %d\n", e.name, p.User)
	if e.keyFile != "" {
		fmt.Fprintf(w, "key-file = %s\n", e.keyFile)
	} else {
		fmt.Fprintf(w, "key = %s\n", p.Key.Encode())
	}
	fmt.Fprintf(w, "ports = %s/%d\nmax-duration = %d\n", p.Proto, p.Port, p.Duration)
	if a := allowAddress(p); a != "" {
		fmt.Fprintf(w, "allow-address = %s\n", a)
	}
}

// allowAddress is the allow-address a profile needs: only an explicit
// address does, as a single-address network. Modes source and auto need
// none: auto binds the address STUN reports under the tag (mode bound),
// so the grant is always for the knock's source.
func allowAddress(p *profile.Profile) string {
	a, err := netip.ParseAddr(p.Address)
	if err != nil {
		return ""
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()).String()
}
