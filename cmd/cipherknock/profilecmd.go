package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/cipherknock/cipherknock/crypto"
	"github.com/cipherknock/cipherknock/profile"
)

type profileCmd struct {
	Import importCmd `cmd:"" help:"Store a profile URI from a file (mode 0600), standard input (-) or CIPHERKNOCK_URI."`
	List   listCmd   `cmd:"" help:"List the stored profiles."`
	Show   showCmd   `cmd:"" help:"Show a profile (the keys only with --reveal)."`
	Rm     rmCmd     `cmd:"" help:"Remove a profile."`
}

// Help shows examples and the exit status under profile --help.
func (profileCmd) Help() string {
	return `Examples:
  cipherknock profile import alice.uri
  cipherknock profile list
  cipherknock profile show gate --reveal --qr

Exit status: 0 on success, 1 on a system error, 2 on a usage or profile error.`
}

type importCmd struct {
	Source string `arg:"" optional:"" placeholder:"FILE|-" help:"File holding the URI (mode 0600), or - for standard input."`
	File   string `placeholder:"FILE" help:"Read the URI from FILE (the same as giving FILE as the argument)."`
	Name   string `help:"Store under this name (default: the URI's name, or its host)."`
	Force  bool   `help:"Replace an existing profile of that name."`
}

// Help shows examples and the exit status under profile import --help.
func (c *importCmd) Help() string {
	return `Examples:
  cipherknock profile import alice.uri          # the file keygen --uri-file wrote
  cipherknock profile import - < alice.uri
  CIPHERKNOCK_URI="$(cat alice.uri)" cipherknock profile import --name work

Exit status: 0 when the profile was stored, 2 when the URI is missing or
malformed, its file is readable by others, or a profile of that name exists.`
}

func (c *importCmd) Run(a *app) error {
	var src string
	switch {
	case c.Source != "" && c.File != "":
		return usagef("give the URI's file either as the argument or with --file, not both")
	case c.Source != "":
		src = c.Source
	default:
		src = c.File
	}
	uri, err := a.readSecret(src, "CIPHERKNOCK_URI", "profile URI")
	if err != nil {
		return err
	}
	if uri == "" {
		return usagef("no profile URI: give a FILE, - to read standard input, or set CIPHERKNOCK_URI")
	}
	p, err := profile.ParseURI(uri)
	if err != nil {
		return usage(err)
	}
	if c.Name != "" {
		p.Name = c.Name
	}
	if p.Name == "" {
		return usagef("the URI's host is not usable as a profile name: give --name")
	}
	if err := profile.CheckName(p.Name); err != nil {
		return usage(err)
	}
	st, err := a.store()
	if err != nil {
		return err
	}
	if err := st.Save(p, c.Force); err != nil {
		return usage(err)
	}
	if a.json {
		return a.emit(describe(p, filepath.Join(st.Dir, p.Name+profile.Ext), false))
	}
	a.say("imported profile %q: %s, realm %s, user %d, %s/%d", p.Name, p.Host, p.Realm, p.User, p.Proto, p.Port)
	return nil
}

type listCmd struct{}

func (listCmd) Run(a *app) error {
	st, err := a.store()
	if err != nil {
		return err
	}
	names, err := st.List()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	if !a.json && !a.quiet && len(names) > 0 {
		fmt.Fprintln(tw, "NAME\tHOST\tREALM\tUSER\tPORT")
	}
	for _, n := range names {
		p, err := st.Load(n)
		switch {
		case a.json && err != nil:
			a.emit(map[string]any{"name": n, "error": err.Error()})
		case a.json:
			a.emit(describe(p, "", false))
		case a.quiet:
		case err != nil:
			fmt.Fprintf(tw, "%s\terror: %v\n", n, err)
		default:
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s/%d\n", n, p.Host, p.Realm, p.User, p.Proto, p.Port)
		}
	}
	return tw.Flush()
}

type showCmd struct {
	Name   string `arg:"" help:"Profile name."`
	Reveal bool   `help:"Show the keys and the profile URI."`
	QR     bool   `name:"qr" help:"With --reveal, also print the URI as a QR code."`
	Page   string `placeholder:"URL" env:"CIPHERKNOCK_PAGE" help:"With --reveal, also print the link to your knock page (https://...) with the profile in its # fragment; --qr then shows that link."`
	Invert bool   `name:"qr-invert" help:"Draw the QR code for dark text on a light background."`
}

func (c *showCmd) Run(a *app) error {
	if c.QR && !c.Reveal {
		return usagef("--qr shows the key: it needs --reveal")
	}
	if c.Invert && !c.QR {
		return usagef("--qr-invert needs --qr")
	}
	st, err := a.store()
	if err != nil {
		return err
	}
	p, err := st.Load(c.Name)
	if err != nil {
		return usage(err)
	}
	path := filepath.Join(st.Dir, p.Name+profile.Ext)
	link := ""
	if c.Page != "" && c.Reveal {
		if link, err = pageLink(c.Page, p.URI()); err != nil {
			return err
		}
	}
	if a.json {
		m := describe(p, path, c.Reveal)
		if link != "" {
			m["page_link"] = link
		}
		return a.emit(m)
	}
	if a.quiet {
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("name", p.Name)
	row("file", path)
	row("host", p.Host)
	row("realm", p.Realm)
	row("user", fmt.Sprint(p.User))
	key, rk := crypto.KeyPrefix+"<hidden: --reveal shows it>", "none"
	if p.RealmKey != nil {
		rk = crypto.RealmKeyPrefix + "<hidden>"
	}
	if c.Reveal {
		key = p.Key.Encode()
		if p.RealmKey != nil {
			rk = p.RealmKey.Encode()
		}
	}
	row("key", key)
	row("realm key", rk)
	row("port", fmt.Sprintf("%s/%d", p.Proto, p.Port))
	row("duration", fmt.Sprintf("%d s", p.Duration))
	row("span", fmt.Sprintf("%d-%d", p.Base, p.Span().Last()))
	row("address", p.Address)
	row("transport", p.Via)
	row("repeat", fmt.Sprint(p.Repeat))
	if len(p.STUN) > 0 {
		row("stun", strings.Join(p.STUN, ","))
	}
	if c.Reveal {
		row("uri", p.URI())
	}
	if link != "" {
		row("page link", link)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if c.QR {
		fmt.Fprintln(a.stdout)
		if link != "" {
			return writeQR(a.stdout, link, c.Invert, a.colorOut())
		}
		return writeQR(a.stdout, p.URI(), c.Invert, a.colorOut())
	}
	return nil
}

// describe returns p for --json output; the keys and URI only with reveal.
func describe(p *profile.Profile, path string, reveal bool) map[string]any {
	m := map[string]any{
		"name": p.Name, "host": p.Host, "realm": p.Realm, "user": p.User,
		"port": p.Port, "proto": p.Proto.String(), "duration": p.Duration,
		"base": p.Base, "address": p.Address, "transport": p.Via, "repeat": p.Repeat,
		"has_realm_key": p.RealmKey != nil,
	}
	if len(p.STUN) > 0 {
		m["stun"] = p.STUN
	}
	if path != "" {
		m["path"] = path
	}
	if reveal {
		m["key"] = p.Key.Encode()
		if p.RealmKey != nil {
			m["realm_key"] = p.RealmKey.Encode()
		}
		m["uri"] = p.URI()
	}
	return m
}

type rmCmd struct {
	Name string `arg:"" help:"Profile name."`
}

func (c *rmCmd) Run(a *app) error {
	st, err := a.store()
	if err != nil {
		return err
	}
	if err := st.Remove(c.Name); err != nil {
		if errors.Is(err, profile.ErrNotFound) {
			return usage(err)
		}
		return err
	}
	if a.json {
		return a.emit(map[string]any{"removed": c.Name})
	}
	a.say("removed profile %q", c.Name)
	return nil
}

// Help shows examples and the exit status under profile list --help.
func (listCmd) Help() string {
	return `Examples:
  cipherknock profile list
  cipherknock --json profile list      # one object per profile, keys never included

Exit status: 0, or 1 when the profile directory cannot be read.`
}

// Help shows examples and the exit status under profile show --help.
func (c *showCmd) Help() string {
	return `Examples:
  cipherknock profile show gate
  cipherknock profile show gate --reveal --qr   # the URI as a QR code, for a phone
  cipherknock profile show gate --reveal --qr --qr-invert   # on a light terminal

Exit status: 0, or 2 when there is no such profile or it is unreadable.`
}

// Help shows examples and the exit status under profile rm --help.
func (c *rmCmd) Help() string {
	return `Examples:
  cipherknock profile rm gate

Exit status: 0 when the profile was removed, 2 when there is none.`
}
