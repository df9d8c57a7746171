package gzindex

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestSpanTable measures, for a gzip file named by GZINDEX_SPAN_FILE, the
// index size and random 4 KiB read latency for several spans: the table in
// docs/format.md (go test -tags libdeflate -run SpanTable -v ./gzindex).
func TestSpanTable(t *testing.T) {
	path := os.Getenv("GZINDEX_SPAN_FILE")
	if path == "" || !Supported {
		t.Skip("set GZINDEX_SPAN_FILE to a gzip file (libdeflate build)")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	id := Identity{Size: st.Size()}
	for _, span := range []int64{256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20} {
		start := time.Now()
		x, err := Build(f, id, filepath.Join(t.TempDir(), "x.ckp"), BuildOptions{Span: span})
		if err != nil {
			t.Fatal(err)
		}
		build := time.Since(start)
		r := rand.New(rand.NewPCG(1, 1))
		var lat []time.Duration
		p := make([]byte, 4096)
		for i := 0; i < 300; i++ {
			off := r.Int64N(x.Size() - 4096)
			t0 := time.Now()
			if _, err := x.ReadAt(f, p, off); err != nil {
				t.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		fmt.Printf("span %5d KiB: %4d checkpoints, index %6.2f%% of the gzip file, build %.2fs (%.0f MB/s of output), 4 KiB read p50 %v p99 %v\n",
			span>>10, x.Len(), 100*float64(x.Bytes())/float64(st.Size()), build.Seconds(), float64(x.Size())/build.Seconds()/1e6,
			lat[len(lat)/2].Round(10*time.Microsecond), lat[len(lat)*99/100].Round(10*time.Microsecond))
		x.Close()
	}
}
