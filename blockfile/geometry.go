package blockfile

import (
	"errors"
	"fmt"

	"github.com/gzfs/gzfs/blockindex"
)

// The geometry of a File: which block holds a logical offset, and which
// logical bytes a block holds. Blocks before the last stored one keep the
// sizes the index records (all BlockSize for uniform files); the last stored
// block and every block after it hold BlockSize bytes each, starting where
// the last stored block starts, so that appends keep the file uniform.

// geometry is a snapshot of what block arithmetic needs.
type geometry struct {
	blockSize int64
	stored    int64 // blocks in the index
	tailStart int64 // logical offset of the last stored block (0 if none)
	size      int64 // logical size
}

// tailBase is the first block number laid out arithmetically from tailStart.
func (g geometry) tailBase() int64 { return max(g.stored-1, 0) }

// blockOf returns the block holding logical offset off (off < size), using
// find for offsets inside the frozen, index-described part of the file.
func (g geometry) blockOf(off int64, find func(int64) (int64, error)) (int64, error) {
	if off >= g.tailStart {
		return g.tailBase() + (off-g.tailStart)/g.blockSize, nil
	}
	return find(off)
}

// tailRange returns the logical range of a block at or after the tail base,
// clipped to the logical size.
func (g geometry) tailRange(k int64) (start, end int64) {
	start = g.tailStart + (k-g.tailBase())*g.blockSize
	return start, min(start+g.blockSize, max(g.size, start))
}

// lastBlock returns the number of the block holding the last byte, or -1
// for an empty file.
func (g geometry) lastBlock(find func(int64) (int64, error)) (int64, error) {
	if g.size == 0 {
		return -1, nil
	}
	return g.blockOf(g.size-1, find)
}

// geom returns the current geometry; callers hold f.mu.
func (f *File) geom() geometry {
	g := geometry{blockSize: f.blockSize, stored: f.idx.Len(), size: f.size}
	if g.stored > 0 {
		if r, err := f.idx.At(g.stored - 1); err == nil {
			g.tailStart = r.Logical
		}
	}
	return g
}

// blockRange returns the logical range block k covers now; callers hold f.mu.
func (f *File) blockRange(g geometry, k int64) (start, end int64, err error) {
	if k >= g.tailBase() {
		s, e := g.tailRange(k)
		return s, e, nil
	}
	r, err := f.idx.At(k)
	if err != nil {
		return 0, 0, err
	}
	return r.Logical, r.LogicalEnd(), nil
}

// record reads index record k, turning a damaged record into a block error.
func (f *File) record(k int64) (blockindex.Record, error) {
	r, err := f.idx.At(k)
	if err != nil {
		return r, f.lookupErr(k, err)
	}
	return r, nil
}

// lookupErr turns an index lookup failure for block k (-1: not known yet)
// into the error callers return: a damaged record is corrupt data (EIO with
// a "corrupt block" log line); anything else is a broken invariant of the
// engine and says so, never "corrupt".
func (f *File) lookupErr(k int64, err error) error {
	if errors.Is(err, blockindex.ErrInvalid) {
		return &BlockError{File: f.name, Block: k, Err: err}
	}
	return fmt.Errorf("%s: block lookup: %w", f.name, err)
}
