package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/encoding"
	"github.com/cipherknock/cipherknock/profile"
)

type keygenCmd struct {
	Host     string `required:"" help:"The server's DNS name or IP address."`
	Realm    string `required:"" help:"The server's realm name."`
	User     int    `default:"0" help:"User index given to this key on the server, 0..65535."`
	UserName string `help:"User's name in the server's configuration (default: $USER, else userINDEX)."`
	Name     string `help:"Profile name (default: the host)."`

	Port     int           `default:"22" help:"Port to open."`
	Proto    string        `default:"tcp" enum:"tcp,udp" help:"Protocol of that port: tcp or udp."`
	Duration time.Duration `default:"1h" help:"How long the port stays open."`
	Base     int           `default:"20480" help:"First port of the knock span."`
	Address  string        `default:"source" help:"Address to open: source, auto or an IP address."`
	Via      string        `default:"udp" enum:"udp,tcp" help:"Send knocks as udp datagrams or tcp SYNs."`
	Repeat   int           `default:"1" help:"Send each packet N times."`
	STUN     string        `name:"stun" placeholder:"HOST:PORT,..." help:"STUN servers for address auto."`

	RealmKeyFile   string `placeholder:"FILE" help:"Read the realm's key from FILE (- for standard input); default: $CIPHERKNOCK_REALM_KEY."`
	NewRealmKey    bool   `help:"Make a new realm key too (for a new server) and print its server entry."`
	PassphraseFile string `placeholder:"FILE" help:"Derive the key from the passphrase in FILE (- for standard input) with Argon2id instead of making a random one; only the derived key is stored."`
	Force          bool   `help:"Replace an existing profile of that name."`
	NoQR           bool   `name:"no-qr" help:"Do not print the QR code."`
	Page           string `placeholder:"URL" env:"CIPHERKNOCK_PAGE" help:"URL of your knock page (https://...): also print its link with the profile in the # fragment; the QR code then holds that link."`
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
	if c.Duration%time.Second != 0 || c.Duration < time.Second || c.Duration > crypto.MaxDuration*time.Second {
		return usagef("--duration must be whole seconds from 1s to 18h12m15s")
	}
	if c.Base < encoding.MinBase || c.Base > encoding.MaxBase {
		return usagef("--base must be %d..%d", encoding.MinBase, encoding.MaxBase)
	}
	if c.UserName == "" {
		c.UserName = a.getenv("USER")
		if checkUserName(c.UserName) != nil {
			c.UserName = fmt.Sprintf("user%d", c.User)
		}
	}
	if err := checkUserName(c.UserName); err != nil {
		return usagef("--user-name: %v", err)
	}
	if c.NewRealmKey && c.RealmKeyFile != "" {
		return usagef("--new-realm-key and --realm-key-file exclude each other")
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
	proto, _ := profile.ParseProto(c.Proto)
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
	st, err := a.store()
	if err != nil {
		return err
	}
	if err := st.Save(p, c.Force); err != nil {
		return usage(err)
	}
	path := filepath.Join(st.Dir, p.Name+profile.Ext)
	uri := p.URI()
	qrText, link := uri, ""
	if c.Page != "" {
		if link, err = pageLink(c.Page, uri); err != nil {
			return err
		}
		qrText = link
	}
	if a.json {
		m := map[string]any{"name": p.Name, "path": path, "uri": uri, "server": serverEntry(p, c.UserName, c.NewRealmKey)}
		if link != "" {
			m["page_link"] = link
		}
		return a.emit(m)
	}
	if a.quiet {
		return nil
	}
	w := a.stdout
	fmt.Fprintf(w, "Profile %q saved to %s\n\n", p.Name, path)
	fmt.Fprintf(w, "Profile URI (it holds the key: share it only with the phone or machine that knocks):\n%s\n\n", uri)
	if link != "" {
		fmt.Fprintf(w, "Knock page link (it holds the key too; the # part never reaches the server):\n%s\n\n", link)
	}
	if !c.NoQR {
		if err := writeQR(w, qrText); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Server side: add to cipherknockd.conf:\n")
	writeServerEntry(w, p, c.UserName, c.NewRealmKey)
	return nil
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

// serverEntry is the daemon's side of a profile (its configuration's
// [user NAME] section and, with a new realm key, the [daemon] keys), for
// --json.
func serverEntry(p *profile.Profile, name string, withRealm bool) map[string]any {
	user := map[string]any{
		"name": name, "index": p.User, "key": p.Key.Encode(),
		"ports":        fmt.Sprintf("%s/%d", p.Proto, p.Port),
		"max-duration": p.Duration,
	}
	if a := allowAddress(p); a != "" {
		user["allow-address"] = a
	}
	daemon := map[string]any{"realm": p.Realm, "span-base": p.Base}
	if withRealm && p.RealmKey != nil {
		daemon["realm-key"] = p.RealmKey.Encode()
	}
	return map[string]any{"daemon": daemon, "user": user}
}

// writeServerEntry prints the section to paste into cipherknockd.conf.
func writeServerEntry(w io.Writer, p *profile.Profile, name string, withRealm bool) {
	if withRealm && p.RealmKey != nil {
		fmt.Fprintf(w, "[daemon]\nrealm = %s\nrealm-key = %s\nspan-base = %d\n\n", p.Realm, p.RealmKey.Encode(), p.Base)
	} else {
		fmt.Fprintf(w, "# [daemon] needs: realm = %s, span-base = %d\n", p.Realm, p.Base)
	}
	fmt.Fprintf(w, "[user %s]\nindex = %d\nkey = %s\nports = %s/%d\nmax-duration = %d\n", name, p.User, p.Key.Encode(), p.Proto, p.Port, p.Duration)
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
