package main

import (
	"bufio"
	"errors"
	"io"

	"rsc.io/qr/coding"
)

const qrQuiet = 2 // modules of light border; phone scanners manage with 2

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
// character cell. Light modules are drawn and dark ones left blank, which
// reads right on the usual light-on-dark terminal.
func writeQR(w io.Writer, text string) error {
	code, err := encodeQR(text)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	for _, line := range qrLines(code) {
		bw.WriteString(line)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// qrLines renders code, quiet zone included.
func qrLines(code *coding.Code) []string {
	n := code.Size + 2*qrQuiet
	light := func(x, y int) bool { return !code.Black(x-qrQuiet, y-qrQuiet) }
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
