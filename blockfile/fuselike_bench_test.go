package blockfile

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkFuseLikeRead reads like the kernel does for a sequential reader of
// the mount: 128 KiB requests from 4 goroutines at once, slightly out of order.
func BenchmarkFuseLikeRead(b *testing.B) {
	data := benchCorpus()
	path := filepath.Join(b.TempDir(), "s.gz")
	packFile(b, path, data, Options{})
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		f, _ := Open(path, Options{ReadOnly: true, Cache: NewCache(64 << 20)})
		readLikeKernel(int64(len(data)), 128<<10, func(buf []byte, off int64) { f.ReadAt(buf, off) })
		f.Close()
	}
}

// TestSequentialReadLeavesCacheEmpty: a sequential reader served like the
// kernel serves one (1 MiB requests from 4 goroutines, out of order, each
// block handed on whole) leaves no block in the cache, however long the
// file: read-ahead never inflates again a block already handed on (it did,
// when a request overtook it, and the copy stayed cached unread, so the
// daemon's memory grew with the file up to the cache's bound).
func TestSequentialReadLeavesCacheEmpty(t *testing.T) {
	data := make([]byte, 64<<20)
	for i := 0; i < len(data); i += 512 {
		data[i], data[i+1] = byte(i>>9), byte(i>>17)
	}
	path := filepath.Join(t.TempDir(), "s.gz")
	packFile(t, path, data, Options{})
	for round := 0; round < 5; round++ {
		c := NewCache(64 << 20)
		f, err := Open(path, Options{ReadOnly: true, Cache: c})
		if err != nil {
			t.Fatal(err)
		}
		readLikeKernel(int64(len(data)), 1<<20, func(buf []byte, off int64) {
			var v Vec
			if _, err := f.ReadVec(buf, off, &v); err != nil {
				t.Error(err)
			}
			v.Release()
		})
		c.mu.Lock()
		left := len(c.byFile[f.id])
		c.mu.Unlock()
		f.Close()
		if left != 0 {
			t.Fatalf("round %d: %d blocks left in the cache after a sequential read", round, left)
		}
	}
}

// readLikeKernel reads size bytes in requests of req bytes from 4
// goroutines at once, slightly out of order, as the kernel serves a
// sequential reader of the mount.
func readLikeKernel(size, req int64, read func(buf []byte, off int64)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, req)
			for {
				off := next.Add(req) - req
				if off >= size {
					return
				}
				read(buf, off)
			}
		}()
	}
	wg.Wait()
}

// TestSmallReadsInOneBlockStartNoReadAhead: two small reads that fall into
// the same block are a random reader's and start no read-ahead (one did,
// with 8 MiB of the backing file asked from the disk, and the random
// reads behind it waited: P12's random-read tail); a small read that
// starts where the last one ended is a sequential reader's and does.
func TestSmallReadsInOneBlockStartNoReadAhead(t *testing.T) {
	data := make([]byte, 64*61440)
	for i := 0; i < len(data); i += 512 {
		data[i], data[i+1] = byte(i>>9), byte(i>>17)
	}
	path := filepath.Join(t.TempDir(), "r.gz")
	packFile(t, path, data, Options{})
	c := NewCache(64 << 20)
	f, err := Open(path, Options{ReadOnly: true, Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cached := func() int {
		f.inFlight.Wait()
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.byFile[f.id])
	}
	buf := make([]byte, 4096)
	block := int64(10 * 61440)
	for _, off := range []int64{block + 8192, block + 40960} {
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	if n := cached(); n != 1 {
		t.Fatalf("two random reads in one block: %d blocks cached, want 1 (no read-ahead)", n)
	}
	if _, err := f.ReadAt(buf, block+40960+4096); err != nil {
		t.Fatal(err)
	}
	if n := cached(); n <= 1 {
		t.Fatalf("a read continuing the last one: %d blocks cached, want read-ahead", n)
	}
}

// TestTwoSequentialReadersEachReadAhead: two readers of one file, one far
// behind the other (more than servedWindow blocks), their requests
// interleaved, each get read-ahead (one shared detector saw neither as
// sequential, and the marks of the reader ahead made the read-ahead of the
// one behind skip the blocks it needed).
func TestTwoSequentialReadersEachReadAhead(t *testing.T) {
	const bs = 8192
	f, data := openPackedText(t, bs, servedWindow+100, 8)
	buf := make([]byte, 4*bs)
	for step := int64(0); step < 5; step++ {
		for _, at := range []int64{servedWindow + 50, 0} { // the reader ahead, then the one behind
			var v Vec
			off := (at + 4*step) * bs
			if n, err := f.ReadVec(buf, off, &v); err != nil || !bytes.Equal(bytes.Join(v.Slices, nil), data[off:off+int64(n)]) {
				t.Fatalf("read at block %d: %d, %v", at+4*step, n, err)
			}
			v.Release()
		}
	}
	f.inFlight.Wait()
	for _, k := range []int64{20, servedWindow + 70} { // just past what each has read
		if !f.cache.has(cacheKey{f.id, k}) {
			t.Errorf("block %d not read ahead", k)
		}
	}
}

// TestRandomReadsKeepSequentialStream: random reads between the requests of
// a sequential reader take the places of streams that never continued, not
// the sequential reader's (with plain least-recently-used, four random
// reads between two of its requests pushed it out, and it lost read-ahead).
func TestRandomReadsKeepSequentialStream(t *testing.T) {
	const bs = 8192
	f, _ := openPackedText(t, bs, 400, 10)
	buf := make([]byte, 4*bs)
	small := make([]byte, 100)
	for step := int64(0); step < 6; step++ {
		var v Vec
		if _, err := f.ReadVec(buf, 4*step*bs, &v); err != nil {
			t.Fatal(err)
		}
		v.Release()
		f.inFlight.Wait() // the read-ahead of this request
		for j := int64(0); j < 2*readStreams; j++ {
			if _, err := f.ReadAt(small, (100+step*40+j*4)*bs+100); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.inFlight.Wait()
	if !f.cache.has(cacheKey{f.id, 24}) {
		t.Error("block 24, just past the sequential reader, was not read ahead")
	}
}

// openPackedText packs blocks blocks of text (seed) at block size bs, level
// 1, and opens the file with a cache that evicts nothing; it is closed at
// the end of the test.
func openPackedText(t *testing.T, bs, blocks int, seed uint64) (*File, []byte) {
	t.Helper()
	data := textish(rand.New(rand.NewPCG(seed, seed+1)), blocks*bs)
	path := filepath.Join(t.TempDir(), "text.gz")
	opts := Options{BlockSize: bs, Level: 1, Cache: NewCache(64 << 20)}
	packFile(t, path, data, opts)
	f, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, data
}
