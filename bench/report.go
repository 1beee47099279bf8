package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

type noisePhase struct {
	Rate          float64 // asked for, packets/s
	Achieved      float64 // sent, packets/s
	Sent          uint64
	Arrived       uint64 // frames the server's bridge port received
	Attempts, OK  int    // legitimate knocks during the phase
	CPUSec        float64
	CPUPerMillion float64 // daemon CPU seconds per million arrived packets
	Drops         string  // what the daemon reports, or "not reported"
	SwitchesPerK  float64 // daemon context switches per thousand packets
	Per           int     // packets per spoofed source (flood phases)
}

type sysResult struct {
	Name, Desc     string
	Knocks, Daemon bool
	LatencyOnly    bool // measured for latency only: no noise or memory phases
	Err            string
	Errors         []string
	LatencyMs      []float64
	LatencyFail    int
	ClientMs       []float64 // client start until the client exited
	DetectionMs    []float64
	Noise          []noisePhase
	Floods         []noisePhase // protocol-aware floods, at the highest rate
	RSSStartKiB    uint64
	RSSIdleKiB     uint64
	RSSAfterKiB    uint64
	HWMKiB         uint64
	MemSources     uint64
	MemRate        float64
	MemNote        string // what the daemon says of its per-source state

	// cipherknock only: the client's exec-to-exit with --no-confirm and a
	// minimal Go program's, interleaved (clientstart.go).
	StartMs, MinimalMs []float64
}

// missing names what a system did not produce.
func (r *sysResult) missing() string {
	var m []string
	if r.Err != "" {
		m = append(m, r.Err)
	}
	if r.Name == "cipherknock" && len(r.StartMs) == 0 {
		m = append(m, "no client start-up figures")
	}
	if r.Knocks && len(r.LatencyMs) == 0 {
		m = append(m, "knock-to-use latency")
	}
	if r.Knocks && r.Daemon && len(r.DetectionMs) == 0 {
		m = append(m, "detection latency")
	}
	if r.Daemon && len(r.Noise) == 0 && !r.LatencyOnly {
		m = append(m, "noise phases")
	}
	if r.Knocks && r.Daemon && r.RSSAfterKiB == 0 && !r.LatencyOnly {
		m = append(m, "memory")
	}
	return strings.Join(m, "; ")
}

// quantile is the nearest-rank quantile of xs.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func median(xs []float64) float64 { return quantile(xs, 0.5) }

func f2(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func writeResults(c *config, rs []*sysResult, elapsed time.Duration) error {
	var b strings.Builder
	mode := "full"
	if c.short {
		mode = "short (-short: a smoke run, not a measurement)"
	}
	fmt.Fprintf(&b, "# cipherknock side-by-side benchmark\n\n")
	fmt.Fprintf(&b, "Run %s UTC, mode %s, %s in all. Machine: see machine.txt; load average (1, 5, 15 min) %s at the start, %s at the end.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04"), mode, elapsed.Round(time.Second), c.loadStart, loadavg())
	fmt.Fprintf(&b, "cipherknock binaries: %s.\n\n", c.ckSource)
	fmt.Fprintf(&b, "Every system protects tcp/8080 on 198.18.0.1 in a server namespace; the client and the noise source are namespaces on the same bridge. Methods: bench/README.md.\n\n")

	summary(&b, rs)

	b.WriteString("## Systems\n\n| system | what |\n| --- | --- |\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %s |\n", r.Name, r.Desc)
	}

	b.WriteString("\n## Knock-to-use latency (client start → port accepts a connection), no noise\n\n")
	b.WriteString("| system | knocks | failed | median ms | p90 ms | p99 ms | max ms | client ran, median ms |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rs {
		if !r.Knocks {
			continue
		}
		x := r.LatencyMs
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %s | %s | %s |\n", r.Name, len(x)+r.LatencyFail, r.LatencyFail,
			f2(median(x)), f2(quantile(x, .9)), f2(quantile(x, .99)), f2(quantile(x, 1)), f2(median(r.ClientMs)))
	}
	b.WriteString("\n\"Client ran\" is the client process's life, start to exit: the part of knock-to-use spent before the last knock packet left.\n")

	b.WriteString("\n## Detection latency (last knock packet on the wire → grant in the kernel), no noise\n\n")
	fmt.Fprintf(&b, "Resolution %s (the prober's SYN interval).\n\n", probeInterval)
	b.WriteString("| system | knocks | median ms | p90 ms | p99 ms | max ms |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rs {
		if !r.Knocks || !r.Daemon {
			continue
		}
		x := r.DetectionMs
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s |\n", r.Name, len(x), f2(median(x)), f2(quantile(x, .9)), f2(quantile(x, .99)), f2(quantile(x, 1)))
	}

	b.WriteString("\n## Under noise: spoofed packets to the knock ports while legitimate knocks continue\n\n")
	fmt.Fprintf(&b, "Each phase lasts %s. Daemon CPU (all threads, schedstat) is taken over the first %s of noise alone, per million packets that arrived at the server in that window; then legitimate knocks run, at most one per 100 ms, and succeed when the port accepts within %s. Wakeups are the daemon's context switches in the same window.\n\n", c.phase, c.phase/4, c.noiseKnock)
	b.WriteString("| system | asked pps | sent pps | arrived | knocks ok | success | daemon CPU s | CPU s / M pkts | wakeups / k pkts | capture drops |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rs {
		for _, p := range r.Noise {
			succ := "–"
			if p.Attempts > 0 {
				succ = fmt.Sprintf("%.0f%%", 100*float64(p.OK)/float64(p.Attempts))
			}
			knocks := "–"
			if r.Knocks {
				knocks = fmt.Sprintf("%d/%d", p.OK, p.Attempts)
			}
			fmt.Fprintf(&b, "| %s | %.0f | %.0f | %d | %s | %s | %.3f | %.3f | %.1f | %s |\n", r.Name, p.Rate, p.Achieved, p.Arrived, knocks, succ, p.CPUSec, p.CPUPerMillion, p.SwitchesPerK, p.Drops)
		}
	}

	b.WriteString("\n## Floods that know the protocol (highest rate asked, knocks paced 2 ms a packet)\n\n")
	b.WriteString("Spoofed sources that each send the given number of packets back to back to the span, the way a sender who knows the protocol outranks a real knock under least-progress eviction: a valid source-mode header first, then positions 1, 2, ... (24: a whole forged knock, which the daemon opens and refuses). Legitimate knocks are single passes paced 2 ms a packet.\n\n")
	b.WriteString("| system | packets per source | asked pps | sent pps | arrived | knocks ok | success | CPU s / M pkts | capture drops |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rs {
		for _, p := range r.Floods {
			succ := "–"
			if p.Attempts > 0 {
				succ = fmt.Sprintf("%.1f%%", 100*float64(p.OK)/float64(p.Attempts))
			}
			fmt.Fprintf(&b, "| %s | %d | %.0f | %.0f | %d | %d/%d | %s | %.3f | %s |\n", r.Name, p.Per, p.Rate, p.Achieved, p.Arrived, p.OK, p.Attempts, succ, p.CPUPerMillion, p.Drops)
		}
	}

	b.WriteString("\n## Memory after distinct spoofed sources (fresh daemon, sources sent as fast as possible)\n\n")
	b.WriteString("| system | RSS idle MiB | sources | sent pps | RSS after MiB | peak RSS MiB | daemon says |\n| --- | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range rs {
		if !r.Knocks || !r.Daemon {
			continue
		}
		note := r.MemNote
		if note == "" {
			note = "–"
		}
		fmt.Fprintf(&b, "| %s | %.1f | %d | %.0f | %.1f | %.1f | %s |\n", r.Name, float64(r.RSSIdleKiB)/1024, r.MemSources, r.MemRate, float64(r.RSSAfterKiB)/1024, float64(r.HWMKiB)/1024, note)
	}

	goals(&b, rs)

	var errs []string
	for _, r := range rs {
		if r.Err != "" {
			errs = append(errs, fmt.Sprintf("- %s: %s", r.Name, r.Err))
		}
		for _, e := range r.Errors {
			errs = append(errs, fmt.Sprintf("- %s (failed knock): %s", r.Name, e))
		}
	}
	if len(errs) > 0 {
		b.WriteString("\n## Errors\n\n" + strings.Join(errs, "\n") + "\n")
	}
	b.WriteString("\nPlots: latency-cdf.png, success-vs-rate.png, cpu-vs-rate.png.\n")

	if err := os.WriteFile(filepath.Join(c.out, "results.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	j, _ := json.MarshalIndent(rs, "", "  ")
	if err := os.WriteFile(filepath.Join(c.out, "results.json"), j, 0o644); err != nil {
		return err
	}
	return plots(c.out, rs)
}

// summary is one line per system: the figures a reader compares first.
func summary(b *strings.Builder, rs []*sysResult) {
	b.WriteString("## Summary\n\n")
	b.WriteString("| system | knock-to-use median / p90 / p99 ms | detection median / p99 ms | knocks through, noise ≥ 170k pps | daemon CPU s per M noise packets, ≥ 170k pps | RSS after the memory phase MiB |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rs {
		lat, det, succ, cpu, mem := "–", "–", "–", "–", "–"
		if len(r.LatencyMs) > 0 {
			lat = fmt.Sprintf("%s / %s / %s", f2(median(r.LatencyMs)), f2(quantile(r.LatencyMs, .9)), f2(quantile(r.LatencyMs, .99)))
		}
		if len(r.DetectionMs) > 0 {
			det = fmt.Sprintf("%s / %s", f2(median(r.DetectionMs)), f2(quantile(r.DetectionMs, .99)))
		}
		ok, att := 0, 0
		var cpus []float64
		for _, p := range r.Noise {
			if p.Achieved >= 170000 {
				ok += p.OK
				att += p.Attempts
				if p.CPUPerMillion > 0 {
					cpus = append(cpus, p.CPUPerMillion)
				}
			}
		}
		if att > 0 {
			succ = fmt.Sprintf("%d/%d", ok, att)
		} else if len(r.Noise) > 0 && r.Knocks {
			succ = "(rate not reached)"
		}
		if len(cpus) > 0 {
			cpu = fmt.Sprintf("%.3f", median(cpus))
		}
		if r.RSSAfterKiB > 0 {
			mem = fmt.Sprintf("%.1f", float64(r.RSSAfterKiB)/1024)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", r.Name, lat, det, succ, cpu, mem)
	}
	b.WriteString("\n")
}

// goals holds cipherknock's figures against the project's targets.
func goals(b *strings.Builder, rs []*sysResult) {
	var ck, floor *sysResult
	for _, r := range rs {
		switch r.Name {
		case "cipherknock":
			ck = r
		case "tcpdump-floor":
			floor = r
		}
	}
	if ck == nil || ck.Err != "" {
		return
	}
	b.WriteString("\n## cipherknock against its goals\n\n| goal | target | measured | met |\n| --- | --- | --- | --- |\n")
	met := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "no"
	}
	row := func(goal, target string, v float64, ok bool) {
		m := met(ok)
		if math.IsNaN(v) {
			m = "not measured"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", goal, target, f2(v), m)
	}
	v := median(ck.LatencyMs)
	row("knock-to-use median (ms)", "≤ 4", v, v <= 4)
	if len(ck.StartMs) > 0 && len(ck.MinimalMs) > 0 {
		c, m := median(ck.StartMs), median(ck.MinimalMs)
		fmt.Fprintf(b, "| client exec to last packet / minimal Go program, medians of %d interleaved runs (%s ms / %s ms) | ≤ 2× | %.2f× | %s |\n",
			len(ck.StartMs), f2(c), f2(m), c/m, met(c/m <= 2))
	}
	v = quantile(ck.LatencyMs, .99)
	row("knock-to-use p99 (ms)", "≤ 10", v, v <= 10)
	v = median(ck.DetectionMs)
	row("detection median (ms)", "≤ 1", v, v <= 1)
	v = quantile(ck.DetectionMs, .99)
	row("detection p99 (ms)", "≤ 5", v, v <= 5)
	// Success at the phases that reached 170k pps.
	ok, att := 0, 0
	for _, p := range ck.Noise {
		if p.Achieved >= 170000 {
			ok += p.OK
			att += p.Attempts
		}
	}
	if att > 0 {
		v = 100 * float64(ok) / float64(att)
		row(fmt.Sprintf("success under ≥170k pps (%%, %d knocks)", att), "≥ 99", v, v >= 99)
	} else {
		row("success under ≥170k pps (%)", "≥ 99 (no phase reached 170k pps)", math.NaN(), false)
	}
	for _, p := range ck.Floods {
		if p.Attempts > 0 {
			v = 100 * float64(p.OK) / float64(p.Attempts)
			row(fmt.Sprintf("success under a flood of %d packets per source at %.0fk pps sent (%%, %d knocks)", p.Per, p.Achieved/1000, p.Attempts), "≥ 99", v, v >= 99)
		}
	}
	// CPU per noise packet: the goal is set at the rate of the summary's
	// column (phases that reached 170k pps, floods included); the lower
	// rates are listed beside it, without a goal, as there the daemon's
	// wakeups rather than its packets set the cost.
	var high, ratios, low []string
	worst, worstRatio := 0.0, 0.0
	phases := func(sys, flr []noisePhase, label func(p noisePhase) string) {
		for i, p := range sys {
			if p.CPUPerMillion <= 0 {
				continue
			}
			r := math.NaN()
			if i < len(flr) && flr[i].CPUPerMillion > 0 {
				r = p.CPUPerMillion / flr[i].CPUPerMillion
			}
			if p.Achieved < 170000 {
				low = append(low, fmt.Sprintf("%s: %.2f (%.1f×)", label(p), p.CPUPerMillion, r))
				continue
			}
			worst = max(worst, p.CPUPerMillion)
			high = append(high, fmt.Sprintf("%s: %.2f", label(p), p.CPUPerMillion))
			if !math.IsNaN(r) {
				worstRatio = max(worstRatio, r)
				ratios = append(ratios, fmt.Sprintf("%s: %.1f×", label(p), r))
			}
		}
	}
	var flrNoise, flrFloods []noisePhase
	if floor != nil {
		flrNoise, flrFloods = floor.Noise, floor.Floods
	}
	phases(ck.Noise, flrNoise, func(p noisePhase) string { return fmt.Sprintf("%.0fk", p.Rate/1000) })
	phases(ck.Floods, flrFloods, func(p noisePhase) string { return fmt.Sprintf("flood %d", p.Per) })
	if len(high) > 0 {
		fmt.Fprintf(b, "| daemon CPU s per M noise packets, each phase at ≥ 170k pps (pps asked, or packets per spoofed source) | ≤ 0.25 | %s | %s |\n", strings.Join(high, ", "), met(worst <= 0.25))
	} else {
		row("daemon CPU s per M noise packets at ≥ 170k pps", "≤ 0.25 (no phase reached 170k pps)", math.NaN(), false)
	}
	if len(ratios) > 0 {
		fmt.Fprintf(b, "| the same / tcpdump floor in the same phase | ≤ 6× | %s | %s |\n", strings.Join(ratios, ", "), met(worstRatio <= 6))
	}
	if len(low) > 0 {
		fmt.Fprintf(b, "| daemon CPU s per M noise packets below 170k pps (ratio to tcpdump) | no goal: the cost of the daemon's wakeups | %s | – |\n", strings.Join(low, ", "))
	}
	v = float64(ck.RSSAfterKiB) / 1024
	row(fmt.Sprintf("RSS after %d spoofed sources (MiB)", ck.MemSources), "≤ 64", v, v <= 64 && ck.MemSources >= 1_000_000)
}

var palette = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0xff, 0x7f, 0x0e, 0xff}, color.RGBA{0x2c, 0xa0, 0x2c, 0xff},
	color.RGBA{0xd6, 0x27, 0x28, 0xff}, color.RGBA{0x94, 0x67, 0xbd, 0xff}, color.RGBA{0x8c, 0x56, 0x4b, 0xff},
}

func plots(dir string, rs []*sysResult) error {
	// Latency CDF, log x.
	p := plot.New()
	p.Title.Text = "Knock-to-use latency (no noise)"
	p.X.Label.Text = "ms (log scale)"
	p.Y.Label.Text = "fraction of knocks"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = false
	p.Legend.Left = false
	lines := 0
	for i, r := range rs {
		if len(r.LatencyMs) == 0 {
			continue
		}
		s := slices.Clone(r.LatencyMs)
		slices.Sort(s)
		pts := make(plotter.XYs, len(s))
		for j, v := range s {
			pts[j] = plotter.XY{X: math.Max(v, 0.01), Y: float64(j+1) / float64(len(s))}
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(r.Name, l)
		lines++
	}
	p.Add(plotter.NewGrid())
	if lines == 0 {
		// No data: a log axis needs a positive range.
		p.X.Min, p.X.Max = 0.1, 1000
	}
	if err := p.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, "latency-cdf.png")); err != nil {
		return err
	}

	for _, spec := range []struct {
		file, title, y string
		val            func(r *sysResult, p noisePhase) (float64, bool)
	}{
		{"success-vs-rate.png", "Legitimate knocks under spoofed noise", "success rate (%)", func(r *sysResult, p noisePhase) (float64, bool) {
			if p.Attempts == 0 {
				return 0, false
			}
			return 100 * float64(p.OK) / float64(p.Attempts), true
		}},
		{"cpu-vs-rate.png", "Daemon CPU per million noise packets", "CPU seconds per million packets (log scale)", func(r *sysResult, p noisePhase) (float64, bool) {
			return p.CPUPerMillion, p.CPUPerMillion > 0
		}},
	} {
		p := plot.New()
		p.Title.Text = spec.title
		p.X.Label.Text = "noise packets/s sent (thousands)"
		p.Y.Label.Text = spec.y
		// Room above the data for the legend.
		p.Legend.Top = true
		if spec.file == "success-vs-rate.png" {
			p.Y.Min, p.Y.Max = -5, 140
		}
		if spec.file == "cpu-vs-rate.png" {
			// From tens of seconds (knockd) to hundredths (the floor).
			p.Y.Scale = plot.LogScale{}
			p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		}
		n := 0
		for i, r := range rs {
			var pts plotter.XYs
			for _, ph := range r.Noise {
				if v, ok := spec.val(r, ph); ok {
					pts = append(pts, plotter.XY{X: ph.Achieved / 1000, Y: v})
				}
			}
			if len(pts) == 0 {
				continue
			}
			// The rate reached is not always in the order asked.
			slices.SortFunc(pts, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
			l, sc, err := plotter.NewLinePoints(pts)
			if err != nil {
				return err
			}
			l.Color = palette[i%len(palette)]
			sc.Color = l.Color
			sc.Shape = plotutil.DefaultGlyphShapes[i%len(plotutil.DefaultGlyphShapes)]
			p.Add(l, sc)
			p.Legend.Add(r.Name, l, sc)
			n++
		}
		p.Add(plotter.NewGrid())
		if n == 0 {
			// No data: a log axis needs a positive range.
			p.Y.Min, p.Y.Max = 0.01, 100
			p.X.Min, p.X.Max = 0, 1
		} else if spec.file == "cpu-vs-rate.png" {
			p.Y.Max *= 30
		}
		if err := p.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, spec.file)); err != nil {
			return err
		}
	}
	return nil
}
