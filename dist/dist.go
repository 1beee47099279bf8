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
