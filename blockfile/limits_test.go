package blockfile

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTruncateGrowThenEmpty is the sequence exercisers start with: a growing
// truncate, then a truncate to 0 (once gave EIO, "index record -1 of 0").
func TestTruncateGrowThenEmpty(t *testing.T) {
	for _, flush := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "t.gz")
		f, err := Create(path, 0o644, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(100000); err != nil {
			t.Fatal(err)
		}
		if flush {
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Truncate(0); err != nil {
			t.Fatalf("flush=%v: Truncate(0) after a growth: %v", flush, err)
		}
		if f.Size() != 0 {
			t.Fatalf("size %d", f.Size())
		}
		if err := f.Truncate(5); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("ab"), 1); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		gzipOK(t, path, []byte{0, 'a', 'b', 0, 0})
	}
}

// TestMaxFileSize: past MaxFileSize a truncate and a write fail with EFBIG
// and change nothing; a write that starts below it stops at it.
func TestMaxFileSize(t *testing.T) {
	defer func(f func(int) (int64, error)) { backingFree = f }(backingFree)
	backingFree = func(int) (int64, error) { return 1 << 62, nil } // room for any hole
	path := filepath.Join(t.TempDir(), "big.gz")
	f, err := Create(path, 0o644, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{MaxFileSize + 1, 999999999999999, 1 << 62} {
		if err := f.Truncate(size); !errors.Is(err, syscall.EFBIG) {
			t.Fatalf("Truncate(%d) = %v, want EFBIG", size, err)
		}
	}
	if _, err := f.WriteAt([]byte("x"), MaxFileSize); !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("WriteAt(max) = %v, want EFBIG", err)
	}
	if f.Size() != 5 {
		t.Fatalf("size %d after refused growths", f.Size())
	}
	n, err := f.WriteAt([]byte("0123456789"), MaxFileSize-4)
	if n != 4 || err != nil {
		t.Fatalf("WriteAt across the maximum = %d, %v; want 4 bytes", n, err)
	}
	if f.Size() != MaxFileSize {
		t.Fatalf("size %d, want %d", f.Size(), MaxFileSize)
	}
	got := make([]byte, 8)
	if n, err := f.ReadAt(got, MaxFileSize-4); n != 4 || err != io.EOF || string(got[:4]) != "0123" {
		t.Fatalf("read at the end: %d %v %q", n, err, got[:n])
	}
	if _, err := f.Append([]byte("y")); !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("Append at max = %v, want EFBIG", err)
	}
	// Never flushed: back to a small file before anything is written.
	if err := f.Truncate(5); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Size() > 4096 {
		t.Fatalf("backing file %d bytes", st.Size())
	}
}

// TestGrowthENOSPC: a growth whose zero fill does not fit in the free space
// fails with ENOSPC at once, and the file keeps its size and bytes; the
// fills other files promised count too.
func TestGrowthENOSPC(t *testing.T) {
	defer func(f func(int) (int64, error)) { backingFree = f }(backingFree)
	free := int64(1 << 20) // about 7,800 zero blocks of 60 KiB: 480 MB of holes
	backingFree = func(int) (int64, error) { return free, nil }
	dir := t.TempDir()
	model := []byte("some data\n")
	f, err := Create(filepath.Join(dir, "a.gz"), 0o644, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(model, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(10 << 30); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Truncate(10 GiB) = %v, want ENOSPC", err)
	}
	if _, err := f.WriteAt([]byte("x"), 10<<30); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("WriteAt(10 GiB) = %v, want ENOSPC", err)
	}
	checkSame(t, f, model, "after refused growths")
	// Two growths that fit alone but not together.
	if err := f.Truncate(300 << 20); err != nil {
		t.Fatal(err)
	}
	g, err := Create(filepath.Join(dir, "b.gz"), 0o644, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Truncate(300 << 20); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("second growth = %v, want ENOSPC", err)
	}
	// Once the first is cut back, the second fits.
	if err := f.Truncate(int64(len(model))); err != nil {
		t.Fatal(err)
	}
	if err := g.Truncate(300 << 20); err != nil {
		t.Fatalf("second growth after the first shrank: %v", err)
	}
	if err := g.Truncate(0); err != nil {
		t.Fatal(err)
	}
}

// TestBigHole grows a file by 64 GiB and closes it: the zero fill is
// written in bulk (about 110 MB), the index stays uniform, and the file
// reads zeros and its data.
func TestBigHole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.gz")
	f, err := Create(path, 0o644, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 30
	start := time.Now()
	if _, err := f.WriteAt([]byte("head"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tail"), size-4); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("64 GiB hole written and closed in %v", time.Since(start))
	st, _ := os.Stat(path)
	if per := float64(size) / float64(st.Size()); per < 400 {
		t.Fatalf("backing file %d bytes for a %d-byte hole: only %.0fx smaller", st.Size(), int64(size), per)
	}
	f, err = Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Size() != size || f.Stats().IndexState != "valid" || !f.Stats().Uniform {
		t.Fatalf("reopened: %+v", f.Stats())
	}
	buf := make([]byte, 8)
	for off, want := range map[int64][]byte{0: []byte("head\x00\x00\x00\x00"), size / 2: make([]byte, 8), size - 8: []byte("\x00\x00\x00\x00tail")} {
		if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF || !bytes.Equal(buf, want) {
			t.Fatalf("at %d: %q, %v", off, buf, err)
		}
	}
}

// TestRebuiltIndexIsUniform: an index rebuilt from the member headers (the
// sidecar missing, as for a file copied in or made by bgzip) is uniform
// when the blocks are, so that a read finds its block by arithmetic, not by
// a binary search (the rebuild records the trailing EOF marker and then
// drops it, which had cleared the flag for good).
func TestRebuiltIndexIsUniform(t *testing.T) {
	data := textish(rand.New(rand.NewPCG(3, 4)), 1<<20+12345)
	for _, bs := range []int{DefaultBlockSize, 65280} {
		path := filepath.Join(t.TempDir(), "u.gz")
		packFile(t, path, data, Options{BlockSize: bs})
		store, err := FindStore(path)
		if err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(store.Dir())
		f, err := Open(path, Options{ReadOnly: true, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		st := f.Stats()
		if !strings.HasPrefix(st.IndexState, "rebuilt") || !st.Uniform || st.BlockSize != bs {
			t.Errorf("block size %d: index %q, uniform %v, block size %d; want rebuilt, uniform", bs, st.IndexState, st.Uniform, st.BlockSize)
		}
		checkSame(t, f, data, "rebuilt index")
		f.Close()
	}
}
