package gzindex

import (
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// blockingReader blocks reads of more than one byte past from until
// released (a long inflate far ahead of the build).
type blockingReader struct {
	io.ReaderAt
	from    int64
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blockingReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= b.from && len(p) > 1 {
		b.once.Do(func() { close(b.entered) })
		<-b.release
	}
	return b.ReaderAt.ReadAt(p, off)
}

// TestLiveReadDoesNotHoldUpBuild: a read through the checkpoints found so
// far that inflates for long (here: blocked in its reads of the gzip file)
// does not hold the lock the build needs to record a checkpoint, so the
// build (and every read queued behind its lock) goes on. It held it for
// the whole inflate: a 4 KiB read near the start waited 1.2 s behind one
// far ahead in a 4.7 GB file.
func TestLiveReadDoesNotHoldUpBuild(t *testing.T) {
	if !Supported {
		t.Skip("pure-Go build: no checkpoint indexes (make test builds with libdeflate)")
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	data := logs(rnd, 24<<20) // the build reports progress every 8 MiB of output
	dir := t.TempDir()
	gf, id := gzFile(t, dir, "f.gz", gzipBytes(t, data, 6))
	live := &Live{}
	pause, resume := make(chan struct{}), make(chan struct{})
	var pauseOnce sync.Once
	built := make(chan error, 1)
	go func() {
		x, err := Build(gf, id, filepath.Join(dir, "f.ckp"), BuildOptions{Span: 64 << 10, Live: live,
			Progress: func(in, out int64) {
				if live.Covers() > 0 {
					pauseOnce.Do(func() { close(pause); <-resume })
				}
			}})
		if err == nil {
			x.Close()
		}
		built <- err
	}()
	select { // checkpoints exist; the build waits
	case <-pause:
	case err := <-built:
		t.Fatalf("the build ended (%v) before it could be paused", err)
	case <-time.After(time.Minute):
		t.Fatal("the build never paused")
	}
	br := &blockingReader{ReaderAt: gf, from: id.Size / 2, entered: make(chan struct{}), release: make(chan struct{})}
	readDone := make(chan error, 1)
	go func() {
		_, err := live.ReadAt(br, make([]byte, 4096), int64(len(data))-10000)
		readDone <- err
	}()
	select { // the read inflates, blocked
	case <-br.entered:
	case err := <-readDone:
		t.Fatalf("the far read ended (%v) without reading far ahead", err)
	}
	close(resume)
	select {
	case err := <-built:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		close(br.release)
		t.Fatal("the build did not go on while a read inflated far ahead")
	}
	close(br.release)
	if err := <-readDone; err != nil && err != ErrNotLive && err != io.EOF {
		t.Fatalf("the far read: %v", err)
	}
}

// TestParseRefusesWindowPastRecords: a record whose window offset is so
// large that offset plus length wraps is refused by parse (it was
// accepted, and reading its window panicked).
func TestParseRefusesWindowPastRecords(t *testing.T) {
	h := header{id: Identity{Ino: 1, Size: 1000}, logical: 100, span: 1, count: 1, recOff: HeaderSize}
	img := h.encode()
	var rec [RecordSize]byte
	p := Point{Out: 0, In: 10, winOff: math.MaxInt64 - 10, winLen: 100}
	p.encode(rec[:])
	img = append(img, rec[:]...)
	if x, err := parse(img); err == nil {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("panic on an index that parse accepted: %v", r)
			}
		}()
		pt, _ := x.At(0)
		x.windowOf(pt)
		t.Errorf("parse accepted a window at %d", pt.winOff)
	}
}
