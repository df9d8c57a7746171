package blockfile

import "testing"

// TestCacheDropFile: dropping one File's blocks leaves the others' and
// keeps the byte count right, however the blocks were put and evicted.
func TestCacheDropFile(t *testing.T) {
	c := NewCache(10 * 100)
	for f := uint64(1); f <= 2; f++ {
		for b := int64(0); b < 4; b++ {
			c.put(cacheKey{f, b}, make([]byte, 100))
		}
	}
	c.put(cacheKey{1, 2}, make([]byte, 100)) // replaced
	for b := int64(10); b < 14; b++ {        // evicts the oldest: file 1's
		c.put(cacheKey{3, b}, make([]byte, 100))
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
}
