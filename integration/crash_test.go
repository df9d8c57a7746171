package integration

import (
	"bytes"
	"fmt"
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
	}
	m.unmount()
	files, _ := filepath.Glob(m.bpath("*.gz"))
	if len(files) != writers {
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
