// Package policy reads the daemon's configuration file and decides, for an
// opened knock, whether its user may have what it asks for (SPEC.md §11:
// what a receiver does with an opened knock).
//
// The file is line-oriented INI in the style of WireGuard and systemd units:
// '#' comments, a [daemon] section, one [user NAME] section per user and
// "key = value" lines. Every error names the file and line it comes from,
// and no error ever repeats a key's value.
package policy
