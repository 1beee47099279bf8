package daemon

// CaptureStats are the capture's counters in the status (sniff.Stats): packets that passed the kernel
// filter, those the kernel dropped because the reader fell behind (a flood
// larger than the machine), and those read, delivered and rejected by the
// user-space re-check; and for the captures that read the firewall's log,
// what they could not read.
type CaptureStats struct {
	Matched   uint64 `json:"matched"`
	Dropped   uint64 `json:"dropped"`
	Read      uint64 `json:"read"`
	Delivered uint64 `json:"delivered"`
	Rejected  uint64 `json:"rejected"`
	// Malformed: NFLOG messages or log lines that could not be read.
	Malformed uint64 `json:"malformed"`
}
