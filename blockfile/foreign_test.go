package blockfile

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gzfs/gzfs/bgzf"
	"github.com/gzfs/gzfs/gzindex"
)

func gzipOf(t *testing.T, data []byte) []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, 6)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

func openForeignAt(t *testing.T, path string) *Foreign {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	store, err := FindStore(path)
	if err != nil {
		t.Fatal(err)
	}
	x, err := OpenForeign(f, path, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func foreignReads(t *testing.T, x *Foreign, model []byte, r *rand.Rand) {
	t.Helper()
	for i := 0; i < 60; i++ {
		off := r.Int64N(int64(len(model)))
		p := make([]byte, 1+r.IntN(70000))
		n, err := x.ReadAt(p, off)
		want := model[off:min(off+int64(len(p)), int64(len(model)))]
		if n != len(want) || !bytes.Equal(p[:n], want) || (n < len(p) && err != io.EOF) {
			t.Fatalf("read %d at %d: %d bytes, %v (want %d)", len(p), off, n, err, len(want))
		}
	}
}

// TestForeign: a plain gzip file reads right by streaming, then through
// the checkpoint index it builds; the index is found again at the next
// open, and dropped and rebuilt when the file changes.
func TestForeign(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	data := textish(r, 3<<20)
	dir := t.TempDir()
	path := filepath.Join(dir, "big.gz")
	os.WriteFile(path, gzipOf(t, data), 0o644)
	x := openForeignAt(t, path)
	if st := x.Stats(); st.IndexState != "missing" && gzindex.Supported {
		t.Fatalf("state %q", st.IndexState)
	}
	foreignReads(t, x, data, r) // streaming
	if !gzindex.Supported {
		if err := x.BuildIndex(0, nil); err == nil {
			t.Fatal("pure-Go build made an index")
		}
		x.Close()
		return
	}
	if err := x.BuildIndex(256<<10, nil); err != nil {
		t.Fatal(err)
	}
	if size, exact := x.Size(); !exact || size != int64(len(data)) {
		t.Fatalf("size %d %v", size, exact)
	}
	foreignReads(t, x, data, r)
	// A sequential reader (as the kernel's read-ahead or cat) continues a
	// cursor: every byte, in order.
	var seq bytes.Buffer
	buf := make([]byte, 128<<10)
	for off := int64(0); ; {
		n, err := x.ReadAt(buf, off)
		seq.Write(buf[:n])
		off += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(seq.Bytes(), data) {
		t.Fatalf("sequential read: %d bytes, want %d", seq.Len(), len(data))
	}
	x.Close()

	x = openForeignAt(t, path)
	if st := x.Stats(); st.IndexState != "valid" || st.Checkpoints < 2 {
		t.Fatalf("reopened: %+v", st)
	}
	foreignReads(t, x, data, r)
	x.Close()

	// The file changes: the index is dropped, never used for wrong bytes.
	data2 := textish(r, 2<<20)
	os.WriteFile(path, gzipOf(t, data2), 0o644)
	x = openForeignAt(t, path)
	if x.Indexed() {
		t.Fatalf("an index of the old file was used: %+v", x.Stats())
	}
	if err := x.BuildIndex(256<<10, nil); err != nil {
		t.Fatal(err)
	}
	foreignReads(t, x, data2, r)
	x.Close()
}

// TestForeignDamaged: a truncated gzip file reads up to the cut, past it
// ErrCorrupt, with and without the index.
func TestForeignDamaged(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 10))
	data := textish(r, 2<<20)
	gz := gzipOf(t, data)
	dir := t.TempDir()
	path := filepath.Join(dir, "cut.gz")
	os.WriteFile(path, gz[:len(gz)/2], 0o644)
	for _, indexed := range []bool{false, true} {
		x := openForeignAt(t, path)
		if indexed {
			if !gzindex.Supported {
				x.Close()
				continue
			}
			if err := x.BuildIndex(128<<10, nil); err != nil {
				t.Fatal(err)
			}
		}
		p := make([]byte, 1000)
		if n, err := x.ReadAt(p, 1000); err != nil || !bytes.Equal(p[:n], data[1000:2000]) {
			t.Fatalf("indexed=%v: read before the cut: %d, %v", indexed, n, err)
		}
		if _, err := x.ReadAt(p, int64(len(data))-5000); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("indexed=%v: read past the cut: %v", indexed, err)
		}
		if indexed {
			// The index ends where the data stops decoding. A read that
			// reaches that point gets the bytes before it and an error,
			// and so does one that starts there: it is not the end of
			// the file (a reader that stopped at Size got a short file
			// and no error).
			size, exact := x.Size()
			if !exact || size <= 0 || size >= int64(len(data)) {
				t.Fatalf("indexed size %d (exact %v) of a file cut in half of %d bytes", size, exact, len(data))
			}
			n, err := x.ReadAt(p, size-100)
			if n != 100 || !bytes.Equal(p[:n], data[size-100:size]) || !errors.Is(err, ErrCorrupt) {
				t.Errorf("read across the damage: %d bytes, %v; want 100 and ErrCorrupt", n, err)
			}
			if n, err := x.ReadAt(p, size); n != 0 || !errors.Is(err, ErrCorrupt) {
				t.Errorf("read at the damage: %d bytes, %v; want ErrCorrupt", n, err)
			}
		}
		x.Close()
	}
	// Only a gzip header: a file cut short, not an empty one.
	os.WriteFile(path, gz[:10], 0o644)
	x := openForeignAt(t, path)
	if n, err := x.ReadAt(make([]byte, 10), 0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("read of a lone gzip header: %d bytes, %v; want ErrCorrupt", n, err)
	}
	x.Close()
}

// TestSniff: the one format decision of the mount and the CLI.
func TestSniff(t *testing.T) {
	var plain bytes.Buffer
	w := gzip.NewWriter(&plain)
	w.Write([]byte("plain gzip"))
	w.Close()
	for _, c := range []struct {
		name   string
		prefix []byte
		want   Format
	}{
		{"empty", nil, FormatBGZF},
		{"eof marker", bgzf.EOFMember, FormatBGZF},
		{"plain gzip", plain.Bytes(), FormatGzip},
		{"text", []byte("hello, world\n"), FormatOther},
		{"one byte", []byte{0x1f}, FormatOther},
	} {
		p := c.prefix
		if len(p) > SniffLen {
			p = p[:SniffLen]
		}
		if got := Sniff(p); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestForeignReadsDuringBuild: reads while the index is built (streaming,
// or through the checkpoints found so far) give the right bytes.
func TestForeignReadsDuringBuild(t *testing.T) {
	if !gzindex.Supported {
		t.Skip("pure-Go build: no checkpoint indexes")
	}
	r := rand.New(rand.NewPCG(17, 18))
	data := textish(r, 6<<20)
	dir := t.TempDir()
	path := filepath.Join(dir, "live.gz")
	os.WriteFile(path, gzipOf(t, data), 0o644)
	x := openForeignAt(t, path)
	defer x.Close()
	done := make(chan error, 1)
	go func() { done <- x.BuildIndex(128<<10, nil) }()
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		default:
		}
		foreignReads(t, x, data, r)
	}
}

// TestForeignChangedWhileOpen: a file rewritten in place while open is
// never read through its old index: the new bytes come back, and a new
// index can be built.
func TestForeignChangedWhileOpen(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	data := textish(r, 2<<20)
	dir := t.TempDir()
	path := filepath.Join(dir, "changing.gz")
	os.WriteFile(path, gzipOf(t, data), 0o644)
	x := openForeignAt(t, path)
	defer x.Close()
	if gzindex.Supported {
		if err := x.BuildIndex(128<<10, nil); err != nil {
			t.Fatal(err)
		}
	}
	foreignReads(t, x, data, r)
	data2 := textish(r, 3<<20)
	os.WriteFile(path, gzipOf(t, data2), 0o644) // same inode, new bytes
	foreignReads(t, x, data2, r)
	if x.Indexed() {
		t.Fatal("the old index is still in use")
	}
	if gzindex.Supported {
		if err := x.BuildIndex(128<<10, nil); err != nil {
			t.Fatal(err)
		}
		foreignReads(t, x, data2, r)
	}
}

// indexedForeign is a gzip -6 file of size bytes of text, opened with a
// checkpoint index of 4 MiB spans (closed at the end of the test).
func indexedForeign(t *testing.T, seed uint64, size int) (*Foreign, []byte, *rand.Rand) {
	t.Helper()
	if !gzindex.Supported {
		t.Skip("no checkpoint index in the pure-Go build")
	}
	r := rand.New(rand.NewPCG(seed, seed))
	data := textish(r, size)
	path := filepath.Join(t.TempDir(), "big.gz")
	os.WriteFile(path, gzipOf(t, data), 0o644)
	x := openForeignAt(t, path)
	t.Cleanup(func() { x.Close() })
	if err := x.BuildIndex(4<<20, nil); err != nil {
		t.Fatal(err)
	}
	return x, data, r
}

// TestForeignKernelLikeReadInflatesOnce: a sequential read as the kernel
// makes it (several 1 MiB requests at once, served out of order) gets every
// byte right and inflates each byte about once: the spans of the stream,
// not a new reader skipping from a checkpoint for every request that finds
// no cursor.
func TestForeignKernelLikeReadInflatesOnce(t *testing.T) {
	x, data, _ := indexedForeign(t, 4, 48<<20)
	before := gzindex.Inflated()
	readLikeKernel(int64(len(data)), 1<<20, func(buf []byte, off int64) {
		n, err := x.ReadAt(buf, off)
		if want := min(int64(len(buf)), int64(len(data))-off); int64(n) != want || (err != nil && err != io.EOF) {
			t.Errorf("read at %d: %d bytes, %v", off, n, err)
			return
		}
		if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
			t.Errorf("read at %d: wrong bytes", off)
		}
	})
	work := float64(gzindex.Inflated()-before) / float64(len(data))
	t.Logf("inflated %.2f× the file", work)
	if work > 1.25 {
		t.Errorf("a kernel-like sequential read inflated %.2f× the file", work)
	}
}

// TestForeignRandomReadsInflateNoSpans: random reads (and a reader going
// backwards) are not taken for a sequential stream, so they start no spans
// (each would inflate 4 MiB ahead for nothing).
func TestForeignRandomReadsInflateNoSpans(t *testing.T) {
	x, data, r := indexedForeign(t, 5, 24<<20)
	p := make([]byte, 4096)
	read := func(off int64) {
		if n, err := x.ReadAt(p, off); n != len(p) || err != nil || !bytes.Equal(p, data[off:off+4096]) {
			t.Fatalf("read at %d: %d, %v", off, n, err)
		}
	}
	for _, off := range r.Perm(len(data)/(2<<20) - 1) { // 2 MiB apart, any order
		read(int64(off)<<21 + int64(r.IntN(1<<20)))
	}
	for off := int64(len(data)) - 8192; off > int64(len(data))-(6<<20); off -= 64 << 10 { // backwards
		read(off)
	}
	x.curMu.Lock()
	spans := len(x.spans)
	x.curMu.Unlock()
	if spans != 0 {
		t.Errorf("random and backward reads started %d spans", spans)
	}
}

// TestForeignIdleSpansGiveSlotsBack: streams that stop mid-file (a pager)
// keep their spans only until another file's stream needs the slots and
// they have been idle for spanIdle; that stream then reads ahead again.
func TestForeignIdleSpansGiveSlotsBack(t *testing.T) {
	var files []*Foreign
	for i := uint64(0); i < 4; i++ {
		x, _, _ := indexedForeign(t, 10+i, 24<<20)
		files = append(files, x)
	}
	p := make([]byte, 1<<20)
	stream := func(x *Foreign) int {
		for off := int64(0); off < 2<<20; off += 1 << 20 {
			if _, err := x.ReadAt(p, off); err != nil {
				t.Fatal(err)
			}
		}
		x.curMu.Lock()
		defer x.curMu.Unlock()
		return len(x.spans)
	}
	held := 0
	for _, x := range files[:3] {
		held += stream(x) // then they stop reading
	}
	if held < cap(spanSlots)-1 {
		t.Fatalf("three stopped streams hold %d spans; the test wants the slots nearly all taken", held)
	}
	time.Sleep(spanIdle + 100*time.Millisecond)
	if n := stream(files[3]); n == 0 {
		t.Error("a new stream got no span: idle spans of stopped streams kept every slot")
	}
}

// TestForeignAfterLastMember: what follows a member is read by one rule,
// streamed and through the index alike, and as gzip reads it: bytes that do
// not start with the gzip magic end the data (a zero, text); a damaged
// header after the magic is corruption. The stream used to fail on a few
// trailing bytes the index accepted, and to end the file silently at a
// damaged header.
func TestForeignAfterLastMember(t *testing.T) {
	a, b := bytes.Repeat([]byte("x"), 300000), bytes.Repeat([]byte("y"), 100000)
	ga, gb := gzipOf(t, a), gzipOf(t, b)
	badMethod := bytes.Clone(gb)
	badMethod[2] = 7
	for _, c := range []struct {
		name    string
		file    []byte
		corrupt bool
	}{
		{"a zero", append(bytes.Clone(ga), 0), false},
		{"text", append(bytes.Clone(ga), "garbage!!"...), false},
		{"a bad method", append(bytes.Clone(ga), badMethod...), true},
		{"magic then junk", append(bytes.Clone(ga), "\x1f\x8bjunkjunkjunk"...), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.gz")
			os.WriteFile(path, c.file, 0o644)
			for _, indexed := range []bool{false, true} {
				x := openForeignAt(t, path)
				if indexed {
					if !gzindex.Supported {
						x.Close()
						continue
					}
					x.BuildIndex(64<<10, nil)
				}
				var got []byte
				p := make([]byte, 50000)
				var err error
				for off := int64(0); ; {
					var n int
					n, err = x.ReadAt(p, off)
					got = append(got, p[:n]...)
					off += int64(n)
					if err != nil {
						break
					}
				}
				x.Close()
				if !bytes.Equal(got, a) {
					t.Errorf("indexed %v: read %d bytes, want the first member's %d", indexed, len(got), len(a))
				}
				if c.corrupt != errors.Is(err, ErrCorrupt) || !c.corrupt && err != io.EOF {
					t.Errorf("indexed %v: ended with %v; corrupt: %v", indexed, err, c.corrupt)
				}
			}
		})
	}
}

// TestForeignChangedDuringBuild: a gzip file appended to while its index is
// being built (the change noticed by a read) reads whole afterwards: the
// index the build finished for the old bytes is not installed for the new
// ones (the appended member read as missing until the last close).
func TestForeignChangedDuringBuild(t *testing.T) {
	if !gzindex.Supported {
		t.Skip("pure-Go build: no checkpoint indexes (make test builds with libdeflate)")
	}
	r := rand.New(rand.NewPCG(1, 1))
	old := textish(r, 6<<20)
	gzOld := gzipOf(t, old)
	for attempt := 0; attempt < 10; attempt++ {
		path := filepath.Join(t.TempDir(), "f.gz")
		os.WriteFile(path, gzOld, 0o644)
		x := openForeignAt(t, path)
		started := make(chan struct{})
		var once sync.Once
		done := make(chan error, 1)
		go func() {
			done <- x.BuildIndex(256<<10, func(in, out int64) { once.Do(func() { close(started) }) })
		}()
		<-started
		time.Sleep(time.Duration(attempt%5) * time.Millisecond)
		more := textish(r, 1<<20)
		f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		f.Write(gzipOf(t, more)) // gzip -c more >> f.gz
		f.Close()
		want := append(bytes.Clone(old), more...)
		x.ReadAt(make([]byte, 10), 0) // notices the change
		<-done
		p := make([]byte, len(want)+10)
		n, err := x.ReadAt(p, 0)
		x.Close()
		if n != len(want) || !bytes.Equal(p[:n], want) || err != io.EOF {
			t.Fatalf("attempt %d: read %d bytes, %v; want %d and EOF", attempt, n, err, len(want))
		}
	}
}
