package trigger

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/cipherknock/cipherknock/firewall"
)

// Grants returns the firewall grants that carry out an Open decision on a
// host that does not translate addresses: one per inbound port, each
// letting d.Remote reach that port for d.Timeout. (firewall.Grant has no
// destination address: on the host itself none is needed.)
func (d *Decision) Grants() []firewall.Grant {
	if d.Action != Open {
		return nil
	}
	gs := make([]firewall.Grant, 0, int(d.In.To)-int(d.In.From)+1)
	for p := int(d.In.From); p <= int(d.In.To); p++ {
		gs = append(gs, firewall.Grant{Addr: d.Remote, Proto: d.In.Proto, Port: uint16(p), Timeout: d.Timeout})
	}
	return gs
}

// Forwards returns the NAT forwards that carry out an Open decision on a
// NAT gateway: each inbound port of the gateway's own address leads to
// the same port of d.Inside, for d.Remote only, for d.Timeout.
func (d *Decision) Forwards() []firewall.Forward {
	if d.Action != Open {
		return nil
	}
	fs := make([]firewall.Forward, 0, int(d.In.To)-int(d.In.From)+1)
	for p := int(d.In.From); p <= int(d.In.To); p++ {
		fs = append(fs, firewall.Forward{
			Remote: d.Remote, Proto: d.In.Proto, Port: uint16(p),
			To: netip.AddrPortFrom(d.Inside, uint16(p)), Timeout: d.Timeout,
		})
	}
	return fs
}

// ApplyNAT carries d out on a NAT gateway and logs it: an Open becomes
// forwards (taking the ports over from d.Previous under last-wins), a
// refusal or a full table changes nothing. If the forwards fail, the
// engine forgets the mapping so the next packet tries again.
func ApplyNAT(ctx context.Context, n *firewall.NAT, e *Engine, log *slog.Logger, d Decision) error {
	if d.Action == Open {
		forward := n.Forward
		if d.Previous.IsValid() {
			forward = n.Replace // the ports lead elsewhere: skip the refused first try
		}
		if err := forward(ctx, d.Forwards()...); err != nil {
			e.Cancel(d)
			log.Error("trigger: forward failed", append(d.attrs(), "err", err)...)
			return err
		}
	}
	d.Log(log)
	return nil
}

// Log writes one line about d: what opened (and for how long), or who
// kept a mapping another host asked for.
func (d *Decision) Log(log *slog.Logger) {
	switch {
	case d.Action == Open && d.Previous.IsValid():
		log.Warn("trigger: mapping taken over (last-wins)", d.attrs()...)
	case d.Action == Open && d.Renewed:
		log.Debug("trigger: renewed", d.attrs()...)
	case d.Action == Open:
		log.Info("trigger: opened", d.attrs()...)
	case d.Action == Refused:
		log.Warn("trigger: refused, mapping held by another inside host", d.attrs()...)
	case d.Action == Full:
		log.Warn("trigger: refused, too many mappings", d.attrs()...)
	}
}

func (d *Decision) attrs() []any {
	a := []any{"trigger", d.Rule.Name, "remote", d.Remote, "inside", d.Inside, "inbound", d.In.String()}
	if d.Action == Open {
		a = append(a, "timeout", d.Timeout)
	}
	if d.Previous.IsValid() {
		a = append(a, "previous", d.Previous)
	}
	if d.Holder.IsValid() {
		a = append(a, "holder", d.Holder)
	}
	return a
}
