package integration

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestCrash kills the daemon with SIGKILL during concurrent writes, several
// times: after the dead mount is cleaned and mounted again, every byte
// written before a returned fsync is there and every backing file is valid
// gzip.
func TestCrash(t *testing.T) {
	m := newMount(t, "flush=200ms")
	const writers = 4
	synced := make([][]byte, writers) // content known durable per file
	var rw rewriteModel
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		stop := make(chan struct{})
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				name := m.path(fmt.Sprintf("f%d", w))
				f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
				if err != nil {
					return
				}
				defer f.Close()
				mu.Lock()
				content := append([]byte{}, synced[w]...)
				mu.Unlock()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					chunk := bytes.Repeat([]byte(fmt.Sprintf("r%d w%d line %d\n", round, w, i)), 1+i%50)
					if _, err := f.Write(chunk); err != nil {
						return
					}
					content = append(content, chunk...)
					if i%5 == 4 {
						if err := f.Sync(); err != nil {
							return
						}
						mu.Lock()
						synced[w] = append([]byte{}, content...)
						mu.Unlock()
					}
				}
			}(w)
		}
		// One more writer rewrites random ranges in place (the engine's
		// journal path); it checks its own file below.
		wg.Add(1)
		go func() {
			defer wg.Done()
			overwriter(m, round, &rw, stop)
		}()
		time.Sleep(700 * time.Millisecond)
		m.kill()
		close(stop)
		wg.Wait()
		m.start()
		// Read everything back through the mount (this opens, and so
		// recovers, every file) and check the synced prefix.
		for w := 0; w < writers; w++ {
			got, err := os.ReadFile(m.path(fmt.Sprintf("f%d", w)))
			if err != nil {
				t.Fatalf("round %d: read f%d: %v", round, w, err)
			}
			if len(got) < len(synced[w]) || !bytes.Equal(got[:len(synced[w])], synced[w]) {
				t.Fatalf("round %d: f%d has %d bytes; %d synced bytes not all there (first difference at %d)",
					round, w, len(got), len(synced[w]), firstDiff(got, synced[w]))
			}
			synced[w] = got // what survived is the base of the next round
		}
		got, err := os.ReadFile(m.path("rw"))
		if err != nil {
			t.Fatalf("round %d: read rw: %v", round, err)
		}
		if err := rw.check(got); err != nil {
			t.Fatalf("round %d: rewritten file: %v", round, err)
		}
		rw.reset(got)
	}
	m.unmount()
	files, _ := filepath.Glob(m.bpath("*.gz"))
	if len(files) != writers+1 {
		t.Errorf("backing files: %v", files)
	}
	for _, f := range files {
		gzipTest(t, f)
	}
	for w := 0; w < writers; w++ {
		if got := zcat(t, m.bpath(fmt.Sprintf("f%d.gz", w))); !bytes.Equal(got, synced[w]) {
			t.Errorf("zcat f%d: %d bytes, mount showed %d", w, len(got), len(synced[w]))
		}
	}
}

// rewriteModel tracks a file rewritten in place: what was synced, and which
// bytes were written after the last fsync (they may hold either value
// after a crash).
type rewriteModel struct {
	mu     sync.Mutex
	synced []byte // content at the last returned fsync
	cur    []byte // content with the writes since
	dirty  []bool // written since the last fsync
}

const rwSize = 1 << 20

func (r *rewriteModel) reset(content []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.synced = append([]byte{}, content...)
	r.cur = append([]byte{}, content...)
	r.dirty = make([]bool, len(content))
}

func (r *rewriteModel) check(got []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(got) != len(r.synced) {
		return fmt.Errorf("size %d, want %d", len(got), len(r.synced))
	}
	for i := range got {
		if !r.dirty[i] && got[i] != r.synced[i] {
			return fmt.Errorf("byte %d: %#x, synced %#x", i, got[i], r.synced[i])
		}
		if r.dirty[i] && got[i] != r.synced[i] && got[i] != r.cur[i] {
			return fmt.Errorf("byte %d: %#x is neither the synced %#x nor the written %#x", i, got[i], r.synced[i], r.cur[i])
		}
	}
	return nil
}

// overwriter writes random ranges of the file rw and fsyncs every few
// writes, until stop or an error (the daemon was killed).
func overwriter(m *mountProc, round int, r *rewriteModel, stop chan struct{}) {
	f, err := os.OpenFile(m.path("rw"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	if round == 0 {
		base := pattern(rwSize, 99)
		if _, err := f.WriteAt(base, 0); err != nil {
			return
		}
		if err := f.Sync(); err != nil {
			return
		}
		r.reset(base)
	}
	rng := rand.New(rand.NewPCG(uint64(round), 7))
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		off := rng.IntN(rwSize - 20_000)
		buf := make([]byte, 1+rng.IntN(20_000))
		for j := range buf {
			buf[j] = byte(rng.IntN(256))
		}
		r.mu.Lock()
		copy(r.cur[off:], buf)
		for j := range buf {
			r.dirty[off+j] = true
		}
		r.mu.Unlock()
		if _, err := f.WriteAt(buf, int64(off)); err != nil {
			return
		}
		if i%4 == 3 {
			if err := f.Sync(); err != nil {
				return
			}
			r.mu.Lock()
			r.synced = append(r.synced[:0], r.cur...)
			clear(r.dirty)
			r.mu.Unlock()
		}
	}
}
