package blockfile

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
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

// TestFastTailChunks: appends to the fast tail block compress only whole
// tailChunk runs of new bytes and store the rest; every flush leaves a
// valid file with the right bytes, also after a write into bytes the
// chunks already encode (which drops them), and Close gives their memory
// back.
func TestFastTailChunks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.gz")
	opts := Options{Level: 6, Cache: NewCache(1 << 20)}
	f, err := Create(path, 0o644, opts)
	if err != nil {
		t.Fatal(err)
	}
	var model []byte
	line := func(i int) []byte {
		return []byte(fmt.Sprintf("2026-12-04T09:%02d:%02dZ INFO id=%d path=/api/items/%d status=200\n", i/60%60, i%60, i, i*7919%5000))
	}
	appendLine := func(i int) {
		t.Helper()
		l := line(i)
		if _, err := f.Append(l); err != nil {
			t.Fatal(err)
		}
		model = append(model, l...)
		if err := f.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	appendLine(0) // the first block, written at the configured level
	before := chunkBytes.Load()
	for i := 1; i < 400; i++ {
		appendLine(i)
		if i%97 == 0 {
			gzipOK(t, path, model)
		}
	}
	tail := int64(len(model)) % int64(f.blockSize)
	if f.fastTail < 0 || f.chunks.block != f.fastTail || int64(len(f.chunks.raw)) != tail/tailChunk*tailChunk {
		t.Fatalf("fast tail %d, chunks of block %d covering %d bytes; want the tail's whole %d-byte runs of %d", f.fastTail, f.chunks.block, len(f.chunks.raw), tailChunk, tail)
	}
	if chunkBytes.Load() <= before {
		t.Fatal("chunk memory not counted")
	}
	// A write into bytes the chunks encode: they no longer match the block.
	at := int64(len(model)) - tail + 100
	if _, err := f.WriteAt([]byte("XYZ"), at); err != nil {
		t.Fatal(err)
	}
	copy(model[at:], "XYZ")
	for i := 400; i < 450; i++ {
		appendLine(i)
	}
	gzipOK(t, path, model)
	got := make([]byte, len(model))
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, model) {
		t.Fatalf("read back: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	gzipOK(t, path, model)
	if chunkBytes.Load() != before {
		t.Fatalf("chunk memory after Close: %d, want %d", chunkBytes.Load(), before)
	}
}

// TestFastTailChunksLargestBlockRandom: the largest block size (65,280
// bytes, bgzip's) of bytes deflate cannot shrink: the stored chunks and
// their framing still fit in a member, and every flush leaves the right
// bytes.
func TestFastTailChunksLargestBlockRandom(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.gz")
	opts := Options{BlockSize: 65280, Level: 6, Cache: NewCache(1 << 20)}
	f, err := Create(path, 0o644, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := rand.New(rand.NewPCG(5, 6))
	var model []byte
	for len(model) < 2*65280 {
		p := make([]byte, 3000)
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		if _, err := f.Append(p); err != nil {
			t.Fatal(err)
		}
		model = append(model, p...)
		if err := f.Flush(); err != nil {
			t.Fatal(err)
		}
		if tail := len(model) % 65280; len(model) > 65280 && tail > 2*tailChunk && len(f.chunks.raw) != tail/tailChunk*tailChunk {
			t.Fatalf("%d-byte random tail: chunks cover %d bytes", tail, len(f.chunks.raw))
		}
	}
	gzipOK(t, path, model)
}

// TestSettleKeepsTimes: the recompression of a fast tail at Close changes
// how the last block is stored, not the file: the backing file keeps its
// access and modification times (they are the mount's; they jumped to the
// time of the close, seconds after the last write).
func TestSettleKeepsTimes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.gz")
	opts := Options{Level: 9, Cache: NewCache(1 << 20)}
	f, err := Create(path, 0o644, opts)
	if err != nil {
		t.Fatal(err)
	}
	var model []byte
	for i := 0; i < 50; i++ {
		l := []byte(fmt.Sprintf("line %d of a log appended to and flushed line by line\n", i))
		if _, err := f.Append(l); err != nil {
			t.Fatal(err)
		}
		model = append(model, l...)
		if err := f.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if f.fastTail < 0 {
		t.Fatal("no fast tail to settle")
	}
	before, _ := os.ReadFile(path)
	then := time.Date(2001, 1, 2, 3, 4, 5, 6, time.UTC)
	if err := os.Chtimes(path, then, then); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(path); bytes.Equal(after, before) {
		t.Fatal("Close did not recompress the tail")
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !st.ModTime().Equal(then) {
		t.Errorf("mtime after the settle %v, want %v", st.ModTime(), then)
	}
	gzipOK(t, path, model)
}
