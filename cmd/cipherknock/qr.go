package main

import (
	"bufio"
	"errors"
	"io"

	"rsc.io/qr/coding"
)

// qrQuiet is the light border, in modules: the four ISO/IEC 18004 asks
// for, since the terminal around the code may be dark or light.
const qrQuiet = 4

// SGR sequences that pin the colours of a QR code drawn on a terminal, so
// that it reads the same whatever the terminal's scheme.
const (
	sgrLightOnDark = "\x1b[97;40m"  // bright white on black
	sgrDarkOnLight = "\x1b[30;107m" // black on bright white
	sgrReset       = "\x1b[0m"
)

// encodeQR encodes text in byte mode at level M (15% of the code may be
// damaged) in the smallest version that holds it. It uses the library's
// coding layer directly: the top-level package brings image types and a PNG
// writer that the binary does not need.
func encodeQR(text string) (*coding.Code, error) {
	enc := coding.String(text)
	for v := coding.Version(coding.MinVersion); v <= coding.MaxVersion; v++ {
		if enc.Bits(v) <= v.DataBytes(coding.M)*8 {
			p, err := coding.NewPlan(v, coding.M, 0)
			if err != nil {
				return nil, err
			}
			return p.Encode(enc)
		}
	}
	return nil, errors.New("text too long for a QR code")
}

// writeQR draws text as a QR code with Unicode half blocks, two modules per
// character cell. By default light modules are drawn and dark ones left
// blank, which reads right as light text on a dark background; invert draws
// the dark modules, for dark text on a light background. With color, each
// line also sets its foreground and background colours to match, so that
// the code reads on either scheme.
func writeQR(w io.Writer, text string, invert, color bool) error {
	code, err := encodeQR(text)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	for _, line := range qrLines(code, invert) {
		if color {
			if invert {
				bw.WriteString(sgrDarkOnLight)
			} else {
				bw.WriteString(sgrLightOnDark)
			}
		}
		bw.WriteString(line)
		if color {
			bw.WriteString(sgrReset)
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// qrLines renders code, quiet zone included: drawn cells are the light
// modules, or with invert the dark ones.
func qrLines(code *coding.Code, invert bool) []string {
	n := code.Size + 2*qrQuiet
	light := func(x, y int) bool { return code.Black(x-qrQuiet, y-qrQuiet) == invert }
	var lines []string
	for y := 0; y < n; y += 2 {
		line := make([]rune, 0, n)
		for x := 0; x < n; x++ {
			top, bottom := light(x, y), y+1 < n && light(x, y+1)
			switch {
			case top && bottom:
				line = append(line, '█')
			case top:
				line = append(line, '▀')
			case bottom:
				line = append(line, '▄')
			default:
				line = append(line, ' ')
			}
		}
		lines = append(lines, string(line))
	}
	return lines
}
