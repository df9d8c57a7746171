package blockfile

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/gzfs/gzfs/bgzf"
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
	opts := Options{BlockSize: bs, Level: 1, Cache: NewCache(64 << 20), Workers: 2} // nothing evicted (pooled buffers may be 64 KiB)
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
	if got := f.streams[0].servedTo.Load(); got != 2 {
		t.Errorf("the stream's servedTo %d, want 2", got)
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

// TestReadVecTinyMembers: a BGZF file of another tool with thousands of
// tiny members (and empty ones) in the range of one read: the Vec stays
// within what one writev takes, and holds the right bytes.
func TestReadVecTinyMembers(t *testing.T) {
	enc, err := bgzf.NewEncoder(1)
	if err != nil {
		t.Fatal(err)
	}
	data := textish(rand.New(rand.NewPCG(9, 10)), 300000)
	var file []byte
	for off := 0; off < len(data); off += 100 {
		m, err := enc.Encode(nil, data[off:min(off+100, len(data))], 0)
		if err != nil {
			t.Fatal(err)
		}
		file = append(file, m.Bytes...)
		if off%5000 == 0 {
			file = append(file, bgzf.EOFMember...) // as cat of bgzip files leaves them
		}
	}
	file = append(file, bgzf.EOFMember...)
	path := filepath.Join(t.TempDir(), "tiny.gz")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path, Options{ReadOnly: true, Cache: NewCache(8 << 20)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, len(data))
	var v Vec
	n, err := f.ReadVec(buf, 50, &v)
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if len(v.Slices) > 1024-2 { // IOV_MAX, less go-fuse's two header pieces
		t.Errorf("%d slices in one Vec", len(v.Slices))
	}
	var got []byte
	for _, s := range v.Slices {
		if len(s) == 0 {
			t.Error("an empty slice in the Vec")
		}
		got = append(got, s...)
	}
	v.Release()
	if n != len(data)-50 || !bytes.Equal(got, data[50:]) {
		t.Fatalf("ReadVec of tiny members: %d bytes, want %d, equal %v", n, len(data)-50, bytes.Equal(got, data[50:]))
	}
}
