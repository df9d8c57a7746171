package blockfile

import (
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkFuseLikeRead reads like the kernel does for a sequential reader of
// the mount: 128 KiB requests from 4 goroutines at once, slightly out of order.
func BenchmarkFuseLikeRead(b *testing.B) {
	data := benchCorpus()
	path := filepath.Join(b.TempDir(), "s.gz")
	packFile(b, path, data, Options{})
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		f, _ := Open(path, Options{ReadOnly: true, Cache: NewCache(64 << 20)})
		var next atomic.Int64
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 128<<10)
				for {
					off := next.Add(128<<10) - 128<<10
					if off >= int64(len(data)) {
						return
					}
					f.ReadAt(buf, off)
				}
			}()
		}
		wg.Wait()
		f.Close()
	}
}
