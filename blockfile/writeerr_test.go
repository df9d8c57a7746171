package blockfile

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// failingWrites fails the next *fail writes of members to the backing file
// with ENOSPC.
type failingWrites struct {
	*os.File
	fail *int
}

func (e failingWrites) WriteAt(p []byte, off int64) (int, error) {
	if filepath.Ext(e.Name()) == ".gz" && len(p) > 28 && *e.fail > 0 {
		*e.fail--
		return 0, &os.PathError{Op: "write", Path: e.Name(), Err: syscall.ENOSPC}
	}
	return e.File.WriteAt(p, off)
}

// TestWriteOutErrorIsDeferred: a write whose bytes the File took reports
// success even when writing blocks out then fails (it used to report
// "0 bytes, ENOSPC" while the data was in and written later: an O_APPEND
// writer that tried again got it twice). The failure comes back from the
// next write (which takes nothing) or flush; the data is written once the
// disk has room.
func TestWriteOutErrorIsDeferred(t *testing.T) {
	fail := 0
	prev := wrapFile
	defer func() { wrapFile = prev }()
	wrapFile = func(f *os.File) backingFile { return failingWrites{f, &fail} }
	path := filepath.Join(t.TempDir(), "e.gz")
	opts := Options{BlockSize: MinBlockSize, Level: 1, Logger: quiet, FlushInterval: -1}
	f, err := Create(path, 0o644, opts)
	if err != nil {
		t.Fatal(err)
	}
	data := textish(rand.New(rand.NewPCG(1, 1)), 60*MinBlockSize)
	fail = 1
	if n, err := f.WriteAt(data, 0); n != len(data) || err != nil {
		t.Fatalf("WriteAt: %d, %v; want all of it taken", n, err)
	}
	if n, err := f.WriteAt([]byte("more"), int64(len(data))); n != 0 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("the next write: %d, %v; want 0 and the deferred ENOSPC", n, err)
	}
	if err := f.Flush(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Flush: %v; want the deferred ENOSPC", err)
	}
	if err := f.Flush(); err != nil { // reported once; the disk has room now
		t.Fatalf("second Flush: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	gzipOK(t, path, data)
	g, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	got := make([]byte, g.Size())
	if _, err := g.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %d bytes, %v", len(got), err)
	}
}
