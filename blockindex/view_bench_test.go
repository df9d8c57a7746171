package blockindex

import (
	"path/filepath"
	"testing"
)

// BenchmarkAt compares a record read through an index and through a view
// of it (a copy of the record, the fault guard, the uniform check).
func BenchmarkAt(b *testing.B) {
	path := filepath.Join(b.TempDir(), "x.idx")
	x, err := Create(path, FileID{Ino: 1}, 4096)
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	fill(b, x, 4096, 4096)
	v := x.View()
	for _, c := range []struct {
		name string
		x    *Index
	}{{"index", x}, {"view", v}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := c.x.At(int64(i % 4000)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
