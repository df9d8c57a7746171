package blockfile

import (
	"crypto/rand"
	"path/filepath"
	"testing"
)

func BenchmarkRandomWrite(b *testing.B) {
	data := make([]byte, 64<<20)
	rand.Read(data)
	path := filepath.Join(b.TempDir(), "r.gz")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		f, _ := Create(path, 0o644, Options{})
		for off := 0; off < len(data); off += 128 << 10 {
			f.WriteAt(data[off:off+128<<10], int64(off))
		}
		f.Close()
	}
}
