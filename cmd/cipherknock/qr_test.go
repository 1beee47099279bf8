package main

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipherknock/cipherknock/internal/nstest"
)

const qrTestURI = "cipherknock://knock.example.org/?realm=example&user=7&key=ck-key-aebagbafaydqqcikbmga2dqpcaireeyuculbogazdinryhi6d4qpdqzgiy&rk=ck-realm-aebagbafaydqqcikbmga2dqpcaireeyuculbogazdinryhi6d4qmj6ko5m&port=22&proto=tcp&dur=3600&base=20480&name=work"

// TestQRHalfBlocks checks that the terminal rendering shows exactly the
// code's modules, two rows per line, with a light border.
func TestQRHalfBlocks(t *testing.T) {
	code, err := encodeQR(qrTestURI)
	if err != nil {
		t.Fatal(err)
	}
	lines := qrLines(code)
	n := code.Size + 2*qrQuiet
	if len(lines) != (n+1)/2 {
		t.Fatalf("%d lines for a %d-module code", len(lines), code.Size)
	}
	for y := 0; y < n; y++ {
		row := []rune(lines[y/2])
		if len(row) != n {
			t.Fatalf("line %d has %d cells, want %d", y/2, len(row), n)
		}
		for x := 0; x < n; x++ {
			c := row[x]
			var light bool
			if y%2 == 0 {
				light = c == '█' || c == '▀'
			} else {
				light = c == '█' || c == '▄'
			}
			if light == code.Black(x-qrQuiet, y-qrQuiet) {
				t.Fatalf("module (%d,%d) drawn wrong", x-qrQuiet, y-qrQuiet)
			}
		}
	}
}

// TestQRDecodes decodes the code with an independent reader, zbarimg.
func TestQRDecodes(t *testing.T) {
	if _, err := exec.LookPath("zbarimg"); err != nil {
		nstest.Skip(t, "needs zbarimg (apt-get install zbar-tools)")
	}
	code, err := encodeQR(qrTestURI)
	if err != nil {
		t.Fatal(err)
	}
	const scale, border = 8, 4
	side := (code.Size + 2*border) * scale
	img := image.NewGray(image.Rect(0, 0, side, side))
	for y := 0; y < side; y++ {
		for x := 0; x < side; x++ {
			v := uint8(255)
			if code.Black(x/scale-border, y/scale-border) {
				v = 0
			}
			img.SetGray(x, y, color.Gray{v})
		}
	}
	path := filepath.Join(t.TempDir(), "qr.png")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command("zbarimg", "--quiet", "--raw", path).Output()
	if err != nil {
		t.Fatalf("zbarimg: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != qrTestURI {
		t.Errorf("decoded %q, want the URI", got)
	}
}
