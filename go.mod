module github.com/cipherknock/cipherknock

go 1.26.0

require golang.org/x/crypto v0.58.0

require (
	github.com/alecthomas/kong v1.17.0
	github.com/coreos/go-iptables v0.8.0
	github.com/google/go-cmp v0.6.0 // indirect
	github.com/google/nftables v0.3.0
	github.com/gopacket/gopacket v1.7.7
	github.com/mdlayher/netlink v1.7.3-0.20250113171957-fbb4dce95f42
	github.com/mdlayher/socket v0.5.0 // indirect
	github.com/rogpeppe/go-internal v1.16.0
	github.com/vishvananda/netlink v1.3.1
	github.com/vishvananda/netns v0.0.5
	golang.org/x/net v0.62.0
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0
	golang.org/x/tools v0.51.0 // indirect
	rsc.io/qr v0.2.0
)
