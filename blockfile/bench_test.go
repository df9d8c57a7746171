package blockfile

import (
	"bytes"
	"compress/gzip"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// benchCorpus is compressible text: a tar of GOROOT/src if GZFS_BENCH_CORPUS
// names one, else generated log-like lines.
var benchCorpus = sync.OnceValue(func() []byte {
	if p := os.Getenv("GZFS_BENCH_CORPUS"); p != "" {
		if b, err := os.ReadFile(p); err == nil {
			return b
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	paths := []string{"/index.html", "/api/v1/items", "/static/app.js", "/login", "/img/logo.png"}
	agents := []string{"Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "Go-http-client/1.1"}
	for b.Len() < 32<<20 {
		b.WriteString("10.0.")
		b.WriteString(itoa(r.IntN(256)))
		b.WriteString(".")
		b.WriteString(itoa(r.IntN(256)))
		b.WriteString(" - - [23/Nov/2026:12:")
		b.WriteString(itoa(10 + r.IntN(50)))
		b.WriteString(":00 +0000] \"GET ")
		b.WriteString(paths[r.IntN(len(paths))])
		b.WriteString(" HTTP/1.1\" 200 ")
		b.WriteString(itoa(r.IntN(100000)))
		b.WriteString(" \"-\" \"")
		b.WriteString(agents[r.IntN(len(agents))])
		b.WriteString("\"\n")
	}
	return b.Bytes()
})

func itoa(n int) string {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(buf[i:])
		}
	}
}

// packFile writes data into a new gzfs file at path.
func packFile(tb testing.TB, path string, data []byte, opts Options) {
	f, err := Create(path, 0o644, opts)
	if err != nil {
		tb.Fatal(err)
	}
	for off := 0; off < len(data); off += 1 << 20 {
		if _, err := f.WriteAt(data[off:min(off+1<<20, len(data))], int64(off)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

func BenchmarkPack(b *testing.B) {
	data := benchCorpus()
	path := filepath.Join(b.TempDir(), "p.gz")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		packFile(b, path, data, Options{})
	}
	st, _ := os.Stat(path)
	b.ReportMetric(float64(len(data))/float64(st.Size()), "ratio")
}

func BenchmarkStdlibGzipPack(b *testing.B) {
	data := benchCorpus()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		w, _ := gzip.NewWriterLevel(&out, 6)
		w.Write(data)
		w.Close()
	}
	b.ReportMetric(float64(len(data))/float64(out.Len()), "ratio")
}

func BenchmarkUnpack(b *testing.B) {
	data := benchCorpus()
	path := filepath.Join(b.TempDir(), "u.gz")
	packFile(b, path, data, Options{})
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

func BenchmarkSequentialReadAt(b *testing.B) {
	data := benchCorpus()
	path := filepath.Join(b.TempDir(), "s.gz")
	packFile(b, path, data, Options{})
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		for off := int64(0); ; off += int64(len(buf)) {
			if _, err := f.ReadAt(buf, off); err != nil {
				break
			}
		}
		f.Close()
	}
}

func BenchmarkStdlibGzipUnpack(b *testing.B) {
	data := benchCorpus()
	var z bytes.Buffer
	w, _ := gzip.NewWriterLevel(&z, 6)
	w.Write(data)
	w.Close()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r, _ := gzip.NewReader(bytes.NewReader(z.Bytes()))
		io.Copy(io.Discard, r)
	}
}

// BenchmarkRandomRead4K reads 4 KiB at random offsets of an uncached file:
// about one block inflate each.
func BenchmarkRandomRead4K(b *testing.B) {
	data := benchCorpus()
	path := filepath.Join(b.TempDir(), "r.gz")
	packFile(b, path, data, Options{})
	f, err := Open(path, Options{ReadOnly: true, Cache: NewCache(0)})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 4096)
	b.SetBytes(4096)
	b.ReportAllocs()
	for b.Loop() {
		off := r.Int64N(int64(len(data)) - 4096)
		if _, err := f.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWrite4KMiddle overwrites 4 KiB in the middle and flushes: one
// block re-read, recompressed and rewritten through the journal.
func BenchmarkWrite4KMiddle(b *testing.B) {
	data := benchCorpus()
	path := filepath.Join(b.TempDir(), "w.gz")
	packFile(b, path, data, Options{})
	f, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	r := rand.New(rand.NewPCG(5, 6))
	b.SetBytes(4096)
	b.ReportAllocs()
	for b.Loop() {
		off := r.Int64N(int64(len(data)) - 4096)
		if _, err := f.WriteAt(data[off:off+4096], off); err != nil {
			b.Fatal(err)
		}
		if err := f.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBlockSize measures what the block size trades: stored ratio, the
// cost of a random 4 KiB read of an uncached block, and the cost of a 4 KiB
// overwrite (one block re-read, recompressed and rewritten, journaled).
// The table in docs/format.md comes from it.
func BenchmarkBlockSize(b *testing.B) {
	data := benchCorpus()
	if len(data) > 32<<20 {
		data = data[:32<<20]
	}
	for _, bs := range []int{16384, 32768, 61440, 65280} {
		b.Run(itoa(bs), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "b.gz")
			packFile(b, path, data, Options{BlockSize: bs})
			st, _ := os.Stat(path)
			f, err := Open(path, Options{Cache: NewCache(0)})
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			r := rand.New(rand.NewPCG(1, 1))
			buf := make([]byte, 4096)
			var readNs, writeNs int64
			n := 0
			for b.Loop() {
				off := r.Int64N(int64(len(data))-4096) &^ 4095
				t0 := nowNanos()
				if _, err := f.ReadAt(buf, off); err != nil {
					b.Fatal(err)
				}
				t1 := nowNanos()
				if _, err := f.WriteAt(buf, off); err != nil {
					b.Fatal(err)
				}
				if err := f.Flush(); err != nil {
					b.Fatal(err)
				}
				readNs += t1 - t0
				writeNs += nowNanos() - t1
				n++
			}
			b.ReportMetric(float64(len(data))/float64(st.Size()), "ratio")
			b.ReportMetric(float64(readNs)/float64(n)/1e3, "µs/read4K")
			b.ReportMetric(float64(writeNs)/float64(n)/1e3, "µs/write4K")
		})
	}
}

// BenchmarkRead1MiB reads 1 MiB at the start and at the end of a 2 GiB
// file: the index makes both cost the same (no walk from the start).
func BenchmarkRead1MiB(b *testing.B) {
	const size = 2 << 30
	path := filepath.Join(b.TempDir(), "big.gz")
	f, err := Create(path, 0o644, Options{})
	if err != nil {
		b.Fatal(err)
	}
	text := benchCorpus()[:2<<20]
	f.WriteAt(text, 0)
	f.WriteAt(text, size-int64(len(text)))
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	for _, at := range []struct {
		name string
		off  int64
	}{{"start", 0}, {"end", size - 1<<20}} {
		b.Run(at.name, func(b *testing.B) {
			buf := make([]byte, 1<<20)
			b.SetBytes(1 << 20)
			for b.Loop() {
				f, err := Open(path, Options{ReadOnly: true})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := f.ReadAt(buf, at.off); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}
