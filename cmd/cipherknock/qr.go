package main

import (
	"bufio"
	"io"

	"rsc.io/qr"
)

const qrQuiet = 2 // modules of light border; phone scanners manage with 2

// writeQR draws text as a QR code with Unicode half blocks, two modules per
// character cell. Light modules are drawn and dark ones left blank, which
// reads right on the usual light-on-dark terminal.
func writeQR(w io.Writer, text string) error {
	code, err := qr.Encode(text, qr.M)
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
func qrLines(code *qr.Code) []string {
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
