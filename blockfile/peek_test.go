package blockfile

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gzfs/gzfs/bgzf"
)

// TestPeekSize: the size of a file that is not open, read without the
// engine: from the index, from the headers when the index is gone or
// stale, through a torn tail; foreign gzip and pending journals are told.
// A small file is read whole; a big one through its index.
func TestPeekSize(t *testing.T) {
	for _, n := range []int{5*MinBlockSize + 77, 200*MinBlockSize + 77} {
		t.Run(fmt.Sprint(n), func(t *testing.T) { testPeekSize(t, n) })
	}
}

func testPeekSize(t *testing.T, n int) {
	r := rand.New(rand.NewPCG(3, 3))
	dir := t.TempDir()
	path := filepath.Join(dir, "p.gz")
	data := textish(r, n)
	packFile(t, path, data, Options{BlockSize: MinBlockSize})
	store, _ := FindStore(path)
	if st, _ := os.Stat(path); (n > 100*MinBlockSize) != (st.Size() > peekWhole) {
		t.Fatalf("backing size %d does not test the path meant for %d bytes", st.Size(), n)
	}
	peek := func() (int64, error) {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return PeekSize(f, store)
	}
	if n, err := peek(); n != int64(len(data)) || err != nil {
		t.Fatalf("with index: %d, %v", n, err)
	}
	ents, _ := os.ReadDir(store.Dir())
	os.RemoveAll(store.Dir())
	os.Mkdir(store.Dir(), 0o755)
	if n, err := peek(); n != int64(len(data)) || err != nil {
		t.Fatalf("without index: %d, %v", n, err)
	}
	if now, _ := os.ReadDir(store.Dir()); len(now) != 0 {
		t.Fatalf("peek wrote sidecars: %v (had %v)", now, ents)
	}
	raw, _ := os.ReadFile(path)
	os.WriteFile(path, raw[:len(raw)-40], 0o644) // torn: the EOF marker and part of the last member
	if n, err := peek(); err != nil || n != int64(len(data)-77) {
		t.Fatalf("torn tail: %d, %v (want %d)", n, err, len(data)-77)
	}
	os.WriteFile(path, raw, 0o644)
	os.WriteFile(store.journalPath(inodeOf(t, path)), []byte("pending"), 0o644)
	if _, err := peek(); !errors.Is(err, ErrPendingJournal) {
		t.Fatalf("pending journal: %v", err)
	}
	os.Remove(store.journalPath(inodeOf(t, path)))
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(data)
	w.Close()
	os.WriteFile(path, gz.Bytes(), 0o644)
	if _, err := peek(); !errors.Is(err, ErrNotBGZF) {
		t.Fatalf("plain gzip: %v", err)
	}
}

func inodeOf(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	return st.Sys().(*syscall.Stat_t).Ino
}

// TestOneBlockNoSidecar: a file of one block (followed by the EOF marker)
// needs no index file, neither when written nor when opened again without
// one (the marker is no second block).
func TestOneBlockNoSidecar(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "one.gz")
	f, err := Create(path, 0o644, testOpts(MinBlockSize))
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("one block\n"), 400)
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	store, _ := FindStore(path)
	for round := 0; round < 2; round++ {
		f, err := Open(path, testOpts(MinBlockSize))
		if err != nil {
			t.Fatal(err)
		}
		if st := f.Stats(); !f.idx.InMemory() {
			t.Fatalf("round %d: index state %q, want in memory", round, st.IndexState)
		}
		got := make([]byte, len(data))
		if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round %d: read back: %v", round, err)
		}
		f.Close()
		if _, err := os.Stat(store.indexPath(inodeOf(t, path))); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("round %d: a one-block file has an index sidecar (%v)", round, err)
		}
	}
	gzipOK(t, path, data)
}

// readCounter counts the reads made through it.
type readCounter struct {
	*os.File
	n *atomic.Int64
}

func (r readCounter) ReadAt(p []byte, off int64) (int, error) {
	r.n.Add(1)
	return r.File.ReadAt(p, off)
}

// Opening a small file with no sidecar (most of a source tree) reads it
// once: the EOF marker, the trailer and the member headers come from that
// copy.
func TestOpenSmallFileReadsOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.gz")
	opts := Options{Logger: quiet}
	f, err := Create(path, 0o644, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("package main\n"), 300)
	if _, err := f.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var reads atomic.Int64
	defer func(w func(*os.File) backingFile) { wrapFile = w }(wrapFile)
	wrapFile = func(f *os.File) backingFile { return readCounter{f, &reads} }
	if f, err = Open(path, opts); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := reads.Load(); n != 1 {
		t.Errorf("open read the backing file %d times, want 1", n)
	}
	checkSame(t, f, want, "after open")
}

// TestForeignTails: bytes after the last whole member that no gzfs append
// cut short can leave are another tool's (trailing data, gzip appending a
// member, a bgzip file cut by a copy). Opening such a file read-write and
// PeekSize leave it byte for byte and say ErrNotBGZF (the mount reads it
// as gzip); gzfs's own torn tails are still cut.
func TestForeignTails(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	data := textish(r, 3*MinBlockSize+500)
	dir := t.TempDir()
	path := filepath.Join(dir, "t.gz")
	packFile(t, path, data, Options{BlockSize: MinBlockSize})
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	if _, err := bgzf.Walk(bytes.NewReader(raw), int64(len(raw)), func(m bgzf.MemberInfo) error {
		offs = append(offs, m.Offset)
		return nil
	}); err != nil || len(offs) != 5 {
		t.Fatalf("walk: %v %v", offs, err)
	}
	bgzip := bytes.Clone(raw) // as htslib writes it: MTIME 0 in every member
	for _, o := range offs {
		bgzf.SetBlockNumber(bgzip[o:], 0)
	}
	var plain bytes.Buffer
	zw := gzip.NewWriter(&plain)
	zw.Write([]byte("appended by gzip\n"))
	zw.Close()
	store, _ := FindStore(path)
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"bgzip then a gzip member", cat(bgzip, plain.Bytes())},
		{"bgzip then gzip appending", cat(bgzip, plain.Bytes()[:30])},
		{"bgzip then text", cat(bgzip, []byte("trailing text\n"))},
		{"bgzip cut in a member", bgzip[:offs[2]+100]},
		{"gzfs then a gzip member", cat(raw, plain.Bytes())},
		{"gzfs then gzip appending", cat(raw, plain.Bytes()[:30])},
		{"gzip member then bgzip", cat(plain.Bytes(), bgzip)},
		{"zeros in a bgzip file, just written", cat(bgzip[:offs[2]], make([]byte, 5000))},
		{"zeros in a gzfs file, just written", cat(raw[:offs[2]], make([]byte, 5000))},
		{"gzfs then bgzip appending", cat(raw[:offs[2]], bgzip[offs[2]:offs[2]+100])},
		{"gzfs then gzip's first bytes", cat(raw, []byte{0x1f, 0x8b, 8})},
		{"gzfs then text", cat(raw, []byte("appended text\n"))},
		{"bgzip then the start of a header", cat(bgzip[:offs[2]], bgzip[offs[2]:offs[2]+12])},
		{"gzfs then 7 bytes of a header, just written", raw[:offs[2]+7]},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(path, c.b, 0o644); err != nil {
				t.Fatal(err)
			}
			os.RemoveAll(store.Dir())
			if f, err := Open(path, Options{}); !errors.Is(err, ErrNotBGZF) {
				if err == nil {
					f.Close()
				}
				t.Errorf("open: %v, want ErrNotBGZF", err)
			}
			fd, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := PeekSize(fd, store); !errors.Is(err, ErrNotBGZF) {
				t.Errorf("PeekSize: %d, %v, want ErrNotBGZF", n, err)
			}
			fd.Close()
			if got, _ := os.ReadFile(path); !bytes.Equal(got, c.b) {
				t.Errorf("the file changed: %d bytes, was %d", len(got), len(c.b))
			}
		})
	}
	// In a gzfs file left alone since (after a reboot), other bytes are
	// most likely pages a power loss kept of its writes: cut, with a copy.
	t.Run("text in a gzfs file, settled", func(t *testing.T) {
		b := cat(raw[:offs[2]], []byte("some text"))
		os.WriteFile(path, b, 0o644)
		old := time.Now().Add(-time.Minute)
		os.Chtimes(path, old, old)
		os.RemoveAll(store.Dir())
		os.Mkdir(store.Dir(), 0o755)
		f, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		ino := f.fid.Ino
		f.Close()
		if got, _ := os.ReadFile(store.tailPath(ino)); string(got) != "some text" {
			t.Errorf("copy of the cut bytes: %q", got)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, cat(raw[:offs[2]], bgzf.EOFMember)) {
			t.Errorf("backing file: %d bytes", len(got))
		}
	})
	// gzfs's own appends cut short: the start of member 2, what follows in
	// a file gzfs numbered; zeros in a file left alone since (as after the
	// reboot that follows a power loss).
	old := time.Now().Add(-time.Minute)
	for _, c := range []struct {
		name    string
		b       []byte
		settled bool
		want    int64
	}{
		{"member 2 cut short", raw[:offs[2]+100], false, 2 * MinBlockSize},
		{"its header cut short, settled", raw[:offs[2]+7], true, 2 * MinBlockSize},
		{"the EOF marker cut short, settled", cat(raw[:offs[2]], bgzf.EOFMember[:10]), true, 2 * MinBlockSize},
		{"the EOF marker cut short in a bgzip file", cat(bgzip[:offs[2]], bgzf.EOFMember[:20]), false, 2 * MinBlockSize},
		{"zeros, settled", cat(raw[:offs[2]], make([]byte, 5000)), true, 2 * MinBlockSize},
		{"zeros in a bgzip file, settled", cat(bgzip[:offs[2]], make([]byte, 5000)), true, 2 * MinBlockSize},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(path, c.b, 0o644); err != nil {
				t.Fatal(err)
			}
			if c.settled {
				os.Chtimes(path, old, old)
			}
			want := c.want
			os.RemoveAll(store.Dir())
			fd, _ := os.Open(path)
			n, err := PeekSize(fd, store)
			fd.Close()
			if err != nil || n != want {
				t.Errorf("PeekSize: %d, %v, want %d", n, err, want)
			}
			f, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Size() != want {
				t.Errorf("size %d, want %d", f.Size(), want)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, cat(c.b[:offs[want/MinBlockSize]], bgzf.EOFMember)) {
				t.Errorf("backing file: %d bytes, want the tail cut at %d and the EOF marker after it", len(got), offs[want/MinBlockSize])
			}
		})
	}
}

// TestReadChangesNothing: opening, reading and closing a file read-write
// writes nothing when nothing was written, even where the file lacks the
// EOF marker (an empty .gz, a BGZF file of another tool without one); the
// first write adds it.
func TestReadChangesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.gz")
	packFile(t, path, textish(rand.New(rand.NewPCG(4, 4)), 2*MinBlockSize+10), Options{BlockSize: MinBlockSize})
	data := textish(rand.New(rand.NewPCG(4, 4)), 2*MinBlockSize+10)
	raw, _ := os.ReadFile(path)
	noMarker := raw[:len(raw)-len(bgzf.EOFMember)]
	for name, b := range map[string][]byte{"empty": nil, "no EOF marker": noMarker} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 100)
			f.ReadAt(buf, 0)
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, b) {
				t.Fatalf("a read changed the file: %d bytes, was %d", len(got), len(b))
			}
			f, err = Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("more"), f.Size()); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(path); !bytes.HasSuffix(got, bgzf.EOFMember) {
				t.Errorf("no EOF marker after a write")
			}
			want := []byte("more")
			if b != nil {
				want = cat(data, want)
			}
			gzipOK(t, path, want)
		})
	}
}

// cat joins byte slices into a new one.
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}
