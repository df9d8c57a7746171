package blockfile

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestTruncatePowerLoss: a truncate of a file whose data was fsynced,
// then power loss. Every image of the backing file that the disk can hold
// afterwards opens to the old or the new size, with the right bytes, and
// stays gzip. A cut at a block boundary (no block to rewrite) used to write
// the EOF marker over the next member and then cut the file, outside the
// journal: the old size came back with a damaged block, and gzip -t
// failed. A cut to nothing may leave an empty file, which reads as empty.
func TestTruncatePowerLoss(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { truncatePowerLossRound(t, seed) })
	}
}

func truncatePowerLossRound(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	rec := recordWrites(t)
	path := filepath.Join(t.TempDir(), "p.gz")
	opts := Options{BlockSize: MinBlockSize, Level: 1, Logger: quiet, FlushInterval: -1}
	f, err := Create(path, 0o644, opts)
	if err != nil {
		t.Fatal(err)
	}
	model := textish(rng, 10*MinBlockSize+rng.IntN(MinBlockSize))
	if _, err := f.WriteAt(model, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	size := int64(rng.IntN(len(model)))
	switch seed % 4 {
	case 0:
		size = size / MinBlockSize * MinBlockSize // a block boundary
	case 1:
		size = 0
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	store, ino := f.store, f.fid.Ino
	f.abandon()
	wrapFile = func(f *os.File) backingFile { return f }
	idxPath, jnlPath := store.indexPath(ino), store.journalPath(ino)
	newestIndex, _ := os.ReadFile(idxPath)
	for i := 0; i < 30; i++ {
		os.WriteFile(path, rec.image(rng, path), 0o644)
		os.WriteFile(jnlPath, rec.image(rng, jnlPath), 0o644)
		past := time.Now().Add(-time.Hour)
		os.Chtimes(path, past, past)
		what := "the newest index"
		if rng.IntN(2) == 0 {
			os.Remove(idxPath)
			what = "no index"
		} else {
			os.WriteFile(idxPath, newestIndex, 0o644)
		}
		g, err := Open(path, opts)
		if err != nil {
			t.Fatalf("image %d (%s, cut to %d of %d): open: %v", i, what, size, len(model), err)
		}
		n := g.Size()
		got := make([]byte, n)
		_, rerr := g.ReadAt(got, 0)
		g.Close()
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			t.Fatalf("image %d (%s, cut to %d of %d): size %d, read: %v", i, what, size, len(model), n, rerr)
		}
		if n != size && n != int64(len(model)) || !bytes.Equal(got, model[:n]) {
			t.Fatalf("image %d (%s): size %d, cut to %d from %d, or wrong bytes", i, what, n, size, len(model))
		}
		if raw, _ := os.ReadFile(path); len(raw) == 0 && n == 0 {
			continue // cut to nothing, marker not yet written: an empty file
		}
		if z, err := gunzipFile(path); err != nil || !bytes.Equal(z, got) {
			t.Fatalf("image %d: gzip -d of the backing file after the open: %v (%d bytes)", i, err, len(z))
		}
	}
}

// gunzipFile decompresses every member of the gzip file at path.
func gunzipFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// killAtTruncate fails the first Truncate of the backing file, as a kill -9
// at that point would stop the daemon.
type killAtTruncate struct {
	*os.File
	killed *bool
}

func (k killAtTruncate) Truncate(size int64) error {
	if filepath.Ext(k.Name()) == ".gz" && !*k.killed {
		*k.killed = true
		return errors.New("killed")
	}
	return k.File.Truncate(size)
}

// TestTruncateKilled: a daemon killed inside a truncate at a block
// boundary leaves the old or the new file, gzip either way.
func TestTruncateKilled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.gz")
	opts := Options{BlockSize: MinBlockSize, Level: 1, Logger: quiet, FlushInterval: -1}
	f, err := Create(path, 0o644, opts)
	if err != nil {
		t.Fatal(err)
	}
	model := textish(rand.New(rand.NewPCG(1, 2)), 10*MinBlockSize)
	f.WriteAt(model, 0)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	killed := false
	prev := wrapFile
	wrapFile = func(f *os.File) backingFile { return killAtTruncate{f, &killed} }
	f, err = Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(4 * MinBlockSize) // no block to rewrite
	f.abandon()
	wrapFile = prev
	if !killed {
		t.Fatal("the truncate never cut the backing file")
	}
	g, err := Open(path, opts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	n := g.Size()
	got := make([]byte, n)
	_, rerr := g.ReadAt(got, 0)
	g.Close()
	if rerr != nil && !errors.Is(rerr, io.EOF) || n != 4*MinBlockSize && n != int64(len(model)) || !bytes.Equal(got, model[:n]) {
		t.Fatalf("after a kill inside the truncate: size %d, %v; want the old or the new file", n, rerr)
	}
	if z, err := gunzipFile(path); err != nil || !bytes.Equal(z, got) {
		t.Fatalf("gzip -d after the reopen: %v", err)
	}
}
