package blockfile

import "testing"

// TestCacheDropFile: dropping one File's blocks leaves the others' and
// keeps the byte count right, however the blocks were put and evicted.
func TestCacheDropFile(t *testing.T) {
	c := NewCache(10 * 100)
	var all []*block
	put := func(k cacheKey) {
		b := newBlock(make([]byte, 100), 0)
		c.put(k, b)
		b.release()
		all = append(all, b)
	}
	for f := uint64(1); f <= 2; f++ {
		for b := int64(0); b < 4; b++ {
			put(cacheKey{f, b})
		}
	}
	put(cacheKey{1, 2})               // replaced
	for b := int64(10); b < 14; b++ { // evicts the oldest: file 1's
		put(cacheKey{3, b})
	}
	c.dropFile(1)
	for b := int64(0); b < 4; b++ {
		if c.has(cacheKey{1, b}) {
			t.Fatalf("block %d of file 1 survived dropFile", b)
		}
	}
	n := 0
	for f := uint64(2); f <= 3; f++ {
		for b := int64(0); b < 14; b++ {
			if c.has(cacheKey{f, b}) {
				n++
			}
		}
	}
	if int64(n)*100 != c.used || len(c.byKey) != n {
		t.Fatalf("%d blocks left, used %d, byKey %d", n, c.used, len(c.byKey))
	}
	c.dropFile(2)
	c.dropFile(3)
	if c.used != 0 || len(c.byKey) != 0 || len(c.byFile) != 0 || c.order.Len() != 0 {
		t.Fatalf("after dropping all: used %d, %d keys, %d files, %d in order", c.used, len(c.byKey), len(c.byFile), c.order.Len())
	}
	for i, b := range all {
		if b.refs.Load() != 0 || b.data != nil {
			t.Fatalf("block %d: %d references left after dropping all", i, b.refs.Load())
		}
	}
}

// TestCachePinnedBlock: a block the cache drops while a reader holds it
// keeps its bytes until the reader releases it; only then does its buffer
// go back to the pool.
func TestCachePinnedBlock(t *testing.T) {
	c := NewCache(100)
	b := newBlock(make([]byte, 100), 0) // not from the pool: its buffers may be larger than the cache
	b.data[0] = 42
	c.put(cacheKey{1, 0}, b)
	b.release()
	pin := c.get(cacheKey{1, 0})
	if pin != b {
		t.Fatal("get did not return the cached block")
	}
	o := newBlock(make([]byte, 100), 0)
	c.put(cacheKey{1, 1}, o) // evicts block 0
	o.release()
	if c.has(cacheKey{1, 0}) {
		t.Fatal("block 0 not evicted")
	}
	if b.data == nil || b.data[0] != 42 {
		t.Fatal("a pinned block lost its bytes when the cache dropped it")
	}
	pin.release()
	if b.data != nil || b.refs.Load() != 0 {
		t.Fatalf("released block still holds its buffer (%d references)", b.refs.Load())
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a release too many did not panic")
		}
	}()
	b.release()
}
