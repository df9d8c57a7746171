package blockfile

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestConvertGzip: every member of a multi-member gzip stream ends up in
// the converted file, zero padding after the last member is dropped, and
// anything the converted file could not hold (a damaged header of a later
// member, other bytes after the last member, a truncated member) is an
// error instead of being left out (pack --in-place and convert=on-write
// then keep the original).
func TestConvertGzip(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	a, b := textish(r, 300<<10), textish(r, 200<<10)
	ga, gb := gzipOf(t, a), gzipOf(t, b)
	badHeader := bytes.Clone(gb)
	badHeader[3] = 0xff // FLG with reserved bits set
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, c := range []struct {
		name string
		in   []byte
		want []byte // nil: must fail with ErrCorrupt
	}{
		{"two members", cat(ga, gb), cat(a, b)},
		{"zero padding", cat(ga, gb, make([]byte, 70000)), cat(a, b)},
		{"damaged second header", cat(ga, badHeader), nil},
		{"text after the last member", cat(ga, []byte("trailing text\n")), nil},
		{"zeros then text", cat(ga, make([]byte, 100), []byte("x")), nil},
		{"truncated second member", cat(ga, gb[:len(gb)/2]), nil},
		{"lone magic after a member", cat(ga, []byte{0x1f, 0x8b}), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.gz")
			dst, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			store, err := OpenStore(filepath.Join(filepath.Dir(path), ".gzfs"))
			if err != nil {
				t.Fatal(err)
			}
			n, err := ConvertGzip(bytes.NewReader(c.in), dst, path, Options{Store: store})
			if c.want == nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("converted %d bytes, err %v; want ErrCorrupt", n, err)
				}
				return
			}
			if err != nil || n != int64(len(c.want)) {
				t.Fatalf("converted %d bytes, %v; want %d", n, err, len(c.want))
			}
			f, err := Open(path, Options{ReadOnly: true, Store: store})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got := make([]byte, f.Size())
			if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, c.want) {
				t.Fatalf("converted file: %d bytes, %v; want %d bytes", len(got), err, len(c.want))
			}
		})
	}
}
