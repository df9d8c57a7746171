package blockfile

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// TestReadVecHandsOnWholeBlocks: a block all of whose bytes ReadVec handed
// on (in one read or several) leaves the cache (the kernel's page cache has
// it now) but its bytes stay valid until the Vec is released; a block read
// in part stays cached (random readers come back for the rest); read-ahead
// never inflates again a block already handed on.
func TestReadVecHandsOnWholeBlocks(t *testing.T) {
	const bs = 8192
	path := filepath.Join(t.TempDir(), "v.gz")
	data := textish(rand.New(rand.NewPCG(3, 4)), 40*bs)
	opts := Options{BlockSize: bs, Level: 1, Cache: NewCache(1 << 20), Workers: 2}
	packFile(t, path, data, opts)
	f, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { f.Close() }()
	buf := make([]byte, 3*bs)
	var v Vec
	// Blocks 1 and 2 whole, half of block 3.
	n, err := f.ReadVec(buf[:2*bs+bs/2], bs, &v)
	if err != nil || n != 2*bs+bs/2 {
		t.Fatalf("ReadVec: %d, %v", n, err)
	}
	f.inFlight.Wait() // read-ahead
	for k, want := range map[int64]bool{1: false, 2: false, 3: true} {
		if got := f.cache.has(cacheKey{f.id, k}); got != want {
			t.Errorf("block %d cached: %v, want %v", k, got, want)
		}
	}
	if got := f.servedTo.Load(); got != 2 {
		t.Errorf("servedTo %d, want 2", got)
	}
	// Churn the cache: the held blocks keep their bytes.
	other := make([]byte, 10*bs)
	if _, err := f.ReadAt(other, 20*bs); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for _, s := range v.Slices {
		got = append(got, s...)
	}
	if !bytes.Equal(got, data[bs:bs+n]) {
		t.Fatal("a held Vec's bytes changed")
	}
	// The rest of block 3: all of it has gone out now.
	var v2 Vec
	if n, err := f.ReadVec(buf[:bs/2], 3*bs+bs/2, &v2); err != nil || n != bs/2 {
		t.Fatalf("ReadVec: %d, %v", n, err)
	}
	v2.Release()
	if f.cache.has(cacheKey{f.id, 3}) {
		t.Error("block 3 still cached after both its halves were handed on")
	}
	pins := append([]*block(nil), v.pins...)
	v.Release()
	for i, b := range pins {
		if r := b.refs.Load(); r < 0 || (i < 2 && r != 0) {
			t.Errorf("block %d of the Vec: %d references after Release", i+1, r)
		}
	}
	// The kernel's requests of a sequential reader come out of order: after
	// blocks 11 and 12 went whole, a read of part of block 10 must not
	// have read-ahead inflate 11 and 12 again.
	f.Close()
	if f, err = Open(path, opts); err != nil {
		t.Fatal(err)
	}
	if n, err := f.ReadVec(buf[:2*bs], 11*bs, &v); err != nil || n != 2*bs {
		t.Fatalf("ReadVec: %d, %v", n, err)
	}
	v.Release()
	f.inFlight.Wait()
	if n, err := f.ReadVec(buf[:bs/2], 10*bs, &v); err != nil || n != bs/2 {
		t.Fatalf("ReadVec: %d, %v", n, err)
	}
	v.Release()
	f.inFlight.Wait()
	for k := int64(11); k <= 12; k++ {
		if f.cache.has(cacheKey{f.id, k}) {
			t.Errorf("read-ahead inflated block %d again after it was handed on", k)
		}
	}
}
