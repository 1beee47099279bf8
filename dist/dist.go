// Package dist holds the files that ship with cipherknockd: its systemd
// unit, an example configuration, and the demo configuration built into
// the binary.
package dist

import _ "embed"

// DemoConfig is the configuration cipherknockd uses when given none.
//
//go:embed demo.conf
var DemoConfig []byte

// DemoConfigName names DemoConfig in messages.
const DemoConfigName = "(built-in demo.conf)"

// ExampleConfig is the example configuration (cipherknockd.conf), which
// cipherknockd new-config writes with a realm of the operator's.
//
//go:embed cipherknockd.conf
var ExampleConfig []byte

// ExampleRealm is ExampleConfig's realm name, refused by the daemon.
const ExampleRealm = "example.org"
