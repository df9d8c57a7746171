package blockfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestFastTail: appends that rewrite the partial last block compress it
// at fastLevel; Close gives it the configured level again, so the file at
// rest is stored as if written in one go.
func TestFastTail(t *testing.T) {
	dir := t.TempDir()
	opts := Options{BlockSize: 4 * MinBlockSize, Level: 9, Cache: NewCache(1 << 20)}
	var model []byte
	line := func(i int) []byte {
		return []byte(fmt.Sprintf("2026-12-02T10:%02d:%02dZ INFO request id=%d path=/api/v1/items/%d status=200\n", i/60%60, i%60, i, i*7919%5000))
	}
	path := filepath.Join(dir, "log.gz")
	f, err := Create(path, 0o644, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// A log reopened per line, as shell >> does: open, append, close.
	n := 0
	for round := 0; round < 3; round++ {
		f, err := Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 300; i++ {
			l := line(n)
			n++
			if _, err := f.Append(l); err != nil {
				t.Fatal(err)
			}
			model = append(model, l...)
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if f.fastTail < 0 {
			t.Fatalf("round %d: appends to a stored partial block did not use the fast level", round)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		gzipOK(t, path, model)
	}
	// The same bytes written in one go.
	once := filepath.Join(dir, "once.gz")
	g, err := Create(once, 0o644, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.WriteAt(model, 0); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	a, _ := os.Stat(path)
	b, _ := os.Stat(once)
	// Slots keep the padding of the fast member until the block is full.
	if a.Size() > b.Size()+b.Size()/20+slackRound {
		t.Fatalf("appended file stored in %d bytes, written at once %d", a.Size(), b.Size())
	}
	f, err = Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(model))
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, model) {
		t.Fatalf("read back: %v", err)
	}
	t.Logf("appended: %d bytes, at once: %d bytes (%d bytes of logs)", a.Size(), b.Size(), len(model))
}
