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
	"unicode/utf8"

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
	for _, invert := range []bool{false, true} {
		lines := qrLines(code, invert)
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
				if light == (code.Black(x-qrQuiet, y-qrQuiet) != invert) {
					t.Fatalf("invert %v: module (%d,%d) drawn wrong", invert, x-qrQuiet, y-qrQuiet)
				}
			}
		}
	}
}

// scheme is a terminal's default colours, as grey levels.
type scheme struct {
	name   string
	fg, bg uint8
}

var (
	darkScheme  = scheme{"dark", 0xd0, 0x1e}
	lightScheme = scheme{"light", 0x28, 0xf5}
)

// renderTerminal draws writeQR's output as a terminal with scheme sc would:
// one module per cell across, two down (the half blocks), SGR colours
// honoured, and the terminal's own background all around.
func renderTerminal(t *testing.T, out string, sc scheme) *image.Gray {
	t.Helper()
	const scale, margin = 6, 8 // pixels per module; modules of terminal background around
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	width := 0
	type cell struct {
		r      rune
		fg, bg uint8
	}
	var grid [][]cell
	for _, l := range lines {
		fg, bg := sc.fg, sc.bg
		var row []cell
		for len(l) > 0 {
			if strings.HasPrefix(l, "\x1b[") {
				end := strings.IndexByte(l, 'm')
				for _, p := range strings.Split(l[2:end], ";") {
					switch p {
					case "0":
						fg, bg = sc.fg, sc.bg
					case "30":
						fg = 0
					case "97":
						fg = 255
					case "40":
						bg = 0
					case "107":
						bg = 255
					default:
						t.Fatalf("unexpected SGR parameter %q", p)
					}
				}
				l = l[end+1:]
				continue
			}
			r, size := utf8.DecodeRuneInString(l)
			l = l[size:]
			row = append(row, cell{r, fg, bg})
		}
		width = max(width, len(row))
		grid = append(grid, row)
	}
	w, h := (width+2*margin)*scale, (2*len(grid)+2*margin)*scale
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = sc.bg
	}
	for cy, row := range grid {
		for cx, c := range row {
			top, bottom := c.bg, c.bg
			switch c.r {
			case '█':
				top, bottom = c.fg, c.fg
			case '▀':
				top = c.fg
			case '▄':
				bottom = c.fg
			case ' ':
			default:
				t.Fatalf("unexpected character %q", c.r)
			}
			for half, v := range []uint8{top, bottom} {
				y0, x0 := (margin+2*cy+half)*scale, (margin+cx)*scale
				for y := y0; y < y0+scale; y++ {
					for x := x0; x < x0+scale; x++ {
						img.SetGray(x, y, color.Gray{v})
					}
				}
			}
		}
	}
	return img
}

// zbar decodes img with zbarimg, an independent reader.
func zbar(t *testing.T, img image.Image) (string, error) {
	t.Helper()
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
	return strings.TrimSpace(string(out)), err
}

// TestQRDecodesOnTerminals renders keygen's QR code as dark- and
// light-scheme terminals show it and decodes each with zbarimg: the plain
// code on the scheme it is drawn for (the default on dark, --qr-invert on
// light), the coloured one a terminal gets on both.
func TestQRDecodesOnTerminals(t *testing.T) {
	nstest.RequireTool(t, "zbarimg")
	cases := []struct {
		invert, color bool
		sc            scheme
	}{
		{false, false, darkScheme},
		{true, false, lightScheme},
		{false, true, darkScheme},
		{false, true, lightScheme},
		{true, true, darkScheme},
		{true, true, lightScheme},
	}
	for _, c := range cases {
		var b strings.Builder
		if err := writeQR(&b, qrTestURI, c.invert, c.color); err != nil {
			t.Fatal(err)
		}
		got, err := zbar(t, renderTerminal(t, b.String(), c.sc))
		if err != nil || got != qrTestURI {
			t.Errorf("invert %v, colour %v, %s scheme: decoded %q (%v), want the URI", c.invert, c.color, c.sc.name, got, err)
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
