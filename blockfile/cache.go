package blockfile

import (
	"container/list"
	"sync"
	"sync/atomic"
)

// Cache is a bounded LRU of inflated blocks, shareable between Files.
type Cache struct {
	mu    sync.Mutex
	max   int64
	used  int64
	order list.List // front: most recently used; values are *cacheEntry
	byKey map[cacheKey]*list.Element
	// byFile lists the cached blocks of each File, so that closing one
	// costs its own blocks, not a walk over the whole cache (an engine
	// closes at every unlink of a file that was read).
	byFile map[uint64]map[int64]*list.Element
}

type cacheKey struct {
	file  uint64 // File.id: unique per open File
	block int64
}

type cacheEntry struct {
	key cacheKey
	blk *block
}

// block is one inflated block. Its bytes are never modified; its buffer
// (from getBlockBuf) goes back to the pool when the last reference is
// released: the cache holds one while it keeps the block, and every reader
// of the bytes (a copy in progress, a reply the kernel has not taken yet)
// holds one of its own. A block nobody releases is left to the garbage
// collector.
type block struct {
	data   []byte
	start  int64 // logical offset of data[0] in the record it was read by (-1: a block the engine wrote)
	refs   atomic.Int32
	served atomic.Int64 // bytes of it handed on to the kernel (ReadVec)
}

// newBlock wraps data, a buffer from getBlockBuf, with one reference: the
// caller's. start is where the index record the block was read by puts it
// (-1 for bytes the engine wrote itself).
func newBlock(data []byte, start int64) *block {
	b := &block{data: data, start: start}
	b.refs.Store(1)
	return b
}

// release drops one reference; the last one recycles the buffer.
func (b *block) release() {
	if b == nil {
		return
	}
	switch n := b.refs.Add(-1); {
	case n == 0:
		putBlockBuf(b.data)
		b.data = nil
	case n < 0:
		panic("blockfile: inflated block released once too often")
	}
}

var nextFileID atomic.Uint64

// NewCache returns a cache holding at most maxBytes of inflated blocks.
func NewCache(maxBytes int64) *Cache {
	return &Cache{max: maxBytes, byKey: make(map[cacheKey]*list.Element), byFile: make(map[uint64]map[int64]*list.Element)}
}

// get returns the cached block, with a reference for the caller to
// release, or nil.
func (c *Cache) get(k cacheKey) *block {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[k]; ok {
		c.order.MoveToFront(e)
		b := e.Value.(*cacheEntry).blk
		b.refs.Add(1)
		return b
	}
	return nil
}

// has reports whether a block is cached without touching its recency.
func (c *Cache) has(k cacheKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.byKey[k]
	return ok
}

// put stores a block (taking a reference of its own; the caller keeps
// its).
func (c *Cache) put(k cacheKey, b *block) {
	size := int64(cap(b.data))
	if size > c.max {
		return
	}
	b.refs.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[k]; ok {
		c.removeLocked(e)
	}
	e := c.order.PushFront(&cacheEntry{key: k, blk: b})
	c.byKey[k] = e
	blocks := c.byFile[k.file]
	if blocks == nil {
		blocks = make(map[int64]*list.Element)
		c.byFile[k.file] = blocks
	}
	blocks[k.block] = e
	c.used += size
	for c.used > c.max {
		e := c.order.Back()
		c.removeLocked(e)
	}
}

func (c *Cache) removeLocked(e *list.Element) {
	ce := e.Value.(*cacheEntry)
	c.order.Remove(e)
	delete(c.byKey, ce.key)
	if blocks := c.byFile[ce.key.file]; blocks != nil {
		delete(blocks, ce.key.block)
		if len(blocks) == 0 {
			delete(c.byFile, ce.key.file)
		}
	}
	c.used -= int64(cap(ce.blk.data))
	ce.blk.release()
}

// drop forgets one block.
func (c *Cache) drop(k cacheKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[k]; ok {
		c.removeLocked(e)
	}
}

// dropBlock forgets block k if the cache still holds b for it.
func (c *Cache) dropBlock(k cacheKey, b *block) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[k]; ok && e.Value.(*cacheEntry).blk == b {
		c.removeLocked(e)
	}
}

// dropFile forgets every block of one File.
func (c *Cache) dropFile(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.byFile[id] {
		c.removeLocked(e)
	}
}
