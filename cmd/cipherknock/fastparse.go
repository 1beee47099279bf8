package main

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The commands on the path to a usable port, knock and connect, are parsed
// without kong when their command line is plain. Kong builds its model of
// a command by reflection over every field and struct tag, help text
// included, and interpolates every help string with a regular expression:
// for knock that costs more than sealing and sending the knock
// (BenchmarkParser, BenchmarkRunKnock). parseFast takes a subset of what
// kong takes and declines the rest, which kong then parses as before, with
// its messages:
//
//   - global flags (-q, --quiet, --json) before the command and anywhere
//     after it; the command's flags after it;
//   - long flags as --name VALUE or --name=VALUE, short ones as -x VALUE;
//     boolean flags bare;
//   - the command's positional arguments, exactly as many as it takes.
//
// It declines help and version flags, unknown flags, clustered short flags
// (-4q), a flag given twice, --, "-", a value that is empty, looks like a
// flag or does not parse, text that is not UTF-8, and the mutually
// exclusive -4 and -6 together. Where it accepts, the result is kong's:
// TestFastParseAgreesWithKong and FuzzFastParse compare the two field by
// field, and TestFastParseKnowsEveryFlag checks that its tables name every
// flag of kong's models with kong's defaults.

// fastFlag is one flag parseFast knows: its long name (kong's), its short
// letter (0 for none) and the field it sets.
type fastFlag struct {
	name  string
	short byte
	value any // *bool, *string, *int or *time.Duration
}

// fastCommand is a command parseFast can parse.
type fastCommand interface {
	Run(a *app) error
	// fastFlags appends the command's flags, after setting their
	// defaults (kong's default tags).
	fastFlags(fs []fastFlag) []fastFlag
	// setArgs sets the positional arguments; false when there are not
	// exactly as many as the command takes, or one does not parse.
	setArgs(args []string) bool
}

func (g *globals) fastFlags(fs []fastFlag) []fastFlag {
	return append(fs,
		fastFlag{"quiet", 'q', &g.Quiet},
		fastFlag{"json", 0, &g.JSON},
	)
}

func (f *sendFlags) fastFlags(fs []fastFlag) []fastFlag {
	f.Timeout = 3 * time.Second
	f.Base = 20480
	return append(fs,
		fastFlag{"address", 'a', &f.Address},
		fastFlag{"via", 0, &f.Via},
		fastFlag{"pacing", 0, &f.Pacing},
		fastFlag{"repeat", 0, &f.Repeat},
		fastFlag{"shuffle", 0, &f.Shuffle},
		fastFlag{"ipv4", '4', &f.IPv4},
		fastFlag{"ipv6", '6', &f.IPv6},
		fastFlag{"stun", 0, &f.STUN},
		fastFlag{"timeout", 0, &f.Timeout},
		fastFlag{"time-offset", 0, &f.TimeOffset},
		fastFlag{"realm", 0, &f.Realm},
		fastFlag{"user", 0, &f.User},
		fastFlag{"base", 0, &f.Base},
		fastFlag{"key-file", 0, &f.KeyFile},
		fastFlag{"realm-key-file", 0, &f.RealmKeyFile},
	)
}

func (f *portFlags) fastFlags(fs []fastFlag) []fastFlag {
	return append(fs,
		fastFlag{"port", 'p', &f.Port},
		fastFlag{"proto", 0, &f.Proto},
	)
}

func (f *confirmFlags) fastFlags(fs []fastFlag) []fastFlag {
	f.Wait = 3 * time.Second
	f.Retries = 2
	return append(fs,
		fastFlag{"duration", 'd', &f.Duration},
		fastFlag{"wait", 0, &f.Wait},
		fastFlag{"retries", 0, &f.Retries},
		fastFlag{"no-confirm", 0, &f.NoConfirm},
	)
}

func (c *knockCmd) fastFlags(fs []fastFlag) []fastFlag {
	fs = append(fs, fastFlag{"budget", 0, &c.Budget})
	fs = c.portFlags.fastFlags(fs)
	fs = c.confirmFlags.fastFlags(fs)
	return c.sendFlags.fastFlags(fs)
}

func (c *knockCmd) setArgs(args []string) bool {
	if len(args) != 1 {
		return false
	}
	c.Target = args[0]
	return true
}

func (c *connectCmd) fastFlags(fs []fastFlag) []fastFlag {
	c.Budget = 8 * time.Second
	fs = append(fs,
		fastFlag{"budget", 0, &c.Budget},
		fastFlag{"keep-open", 0, &c.KeepOpen},
	)
	fs = c.confirmFlags.fastFlags(fs)
	return c.sendFlags.fastFlags(fs)
}

func (c *connectCmd) setArgs(args []string) bool {
	if len(args) != 3 {
		return false
	}
	port, err := strconv.ParseInt(args[2], 0, strconv.IntSize)
	if err != nil {
		return false
	}
	c.Profile, c.Host, c.Port = args[0], args[1], int(port)
	return true
}

// parseFast parses args when they are a plain knock or connect command
// line (see above). It returns the command, the global flags and the
// long names of the flags args gave; ok is false when kong must parse
// args instead.
func parseFast(args []string) (cmd fastCommand, g globals, given map[string]bool, ok bool) {
	i := 0
	for ; i < len(args) && strings.HasPrefix(args[i], "-"); i++ {
	}
	if i == len(args) {
		return nil, g, nil, false
	}
	switch args[i] {
	case "knock":
		cmd = new(knockCmd)
	case "connect":
		cmd = new(connectCmd)
	default:
		return nil, g, nil, false
	}
	var buf [32]fastFlag
	globalFlags := g.fastFlags(buf[:0])
	flags := cmd.fastFlags(globalFlags)
	given = make(map[string]bool, 8)
	var positional []string
	for j := 0; j < len(args); j++ {
		a := args[j]
		if j == i { // the command
			continue
		}
		if !utf8.ValidString(a) || a == "" || a == "-" || a == "--" {
			return nil, g, nil, false
		}
		if a[0] != '-' {
			if j < i {
				return nil, g, nil, false
			}
			positional = append(positional, a)
			continue
		}
		known := flags
		if j < i { // before the command, only the global flags
			known = globalFlags
		}
		var f *fastFlag
		value, hasValue := "", false
		if strings.HasPrefix(a, "--") {
			var name string
			name, value, hasValue = strings.Cut(a[2:], "=")
			f = lookupLong(known, name)
		} else if len(a) == 2 {
			f = lookupShort(known, a[1])
		}
		if f == nil || given[f.name] {
			return nil, g, nil, false
		}
		given[f.name] = true
		if b, isBool := f.value.(*bool); isBool {
			if hasValue {
				return nil, g, nil, false
			}
			*b = true
			continue
		}
		if !hasValue {
			if j+1 >= len(args) || j+1 == i {
				return nil, g, nil, false
			}
			j++
			value = args[j]
			if !utf8.ValidString(value) || strings.HasPrefix(value, "-") {
				return nil, g, nil, false
			}
		}
		if value == "" || !setFast(f.value, value) {
			return nil, g, nil, false
		}
	}
	if !cmd.setArgs(positional) {
		return nil, g, nil, false
	}
	if given["ipv4"] && given["ipv6"] { // kong's xor:"family" says why
		return nil, g, nil, false
	}
	return cmd, g, given, true
}

func lookupLong(fs []fastFlag, name string) *fastFlag {
	for i := range fs {
		if fs[i].name == name {
			return &fs[i]
		}
	}
	return nil
}

func lookupShort(fs []fastFlag, c byte) *fastFlag {
	for i := range fs {
		if fs[i].short != 0 && fs[i].short == c {
			return &fs[i]
		}
	}
	return nil
}

// setFast parses value into v as kong's mappers do: integers with
// strconv.ParseInt in base 0, durations with time.ParseDuration.
func setFast(v any, value string) bool {
	switch v := v.(type) {
	case *string:
		*v = value
	case *int:
		n, err := strconv.ParseInt(value, 0, strconv.IntSize)
		if err != nil {
			return false
		}
		*v = int(n)
	case *time.Duration:
		d, err := time.ParseDuration(value)
		if err != nil {
			return false
		}
		*v = d
	default:
		return false
	}
	return true
}
