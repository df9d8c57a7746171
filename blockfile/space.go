package blockfile

import (
	"fmt"
	"sync/atomic"
	"syscall"

	"github.com/gzfs/gzfs/blockindex"
	"golang.org/x/sys/unix"
)

// Growing a file past its stored blocks (truncate, a write past the end)
// promises a zero fill that only the next flush writes: one compressed zero
// block (about 100 bytes) and one index record per block of the hole. The
// fill of every File not yet flushed is counted here, so that a growth that
// would not fit on the backing filesystem, next to the others, fails with
// ENOSPC before anything is written.
var promisedBytes atomic.Int64

// holeBlocks returns how many blocks a flush at logical size size would
// append as zeros: the blocks past the stored ones that no dirty or pending
// block covers. Callers hold f.mu.
func (f *File) holeBlocks(size int64) int64 {
	if size <= 0 {
		return 0
	}
	g := f.geom()
	if size-1 < g.tailStart {
		return 0
	}
	last := g.tailBase() + (size-1-g.tailStart)/g.blockSize
	n := last - g.stored + 1 - int64(len(f.dirty)+len(f.pending))
	return max(n, 0)
}

// holeCost returns the backing bytes that n zero blocks take.
func (f *File) holeCost(n int64) (int64, error) {
	if n == 0 {
		return 0, nil
	}
	z, err := f.zeroMember(int(f.blockSize))
	if err != nil {
		return 0, err
	}
	return n * int64(len(z.Bytes)+blockindex.RecordSize), nil
}

// checkGrowth fails with ENOSPC when the zero fill of growing the file to
// size would not fit in the free space of the backing filesystem, next to
// the fills other Files have promised. Callers hold f.mu for writing.
func (f *File) checkGrowth(size int64) error {
	need, err := f.holeCost(f.holeBlocks(size))
	if err != nil {
		return err
	}
	need -= f.promised
	if need <= 0 {
		return nil
	}
	free, err := backingFree(int(f.fd.Fd()))
	if err != nil {
		return fmt.Errorf("%s: statfs: %w", f.name, err)
	}
	others := promisedBytes.Load() - f.promised
	if need+others > free {
		return fmt.Errorf("%s: growing to %d bytes needs %d bytes of backing space for its zero blocks, %d are free: %w",
			f.name, size, need, max(free-others, 0), syscall.ENOSPC)
	}
	return nil
}

// promise records the zero fill this File owes its backing file now.
// Callers hold f.mu for writing.
func (f *File) promise() {
	var n int64
	if !f.closed {
		n, _ = f.holeCost(f.holeBlocks(f.size))
	}
	promisedBytes.Add(n - f.promised)
	f.promised = n
}

// backingFree returns the bytes an unprivileged writer may still use on the
// filesystem of fd (a variable for tests).
var backingFree = func(fd int) (int64, error) {
	var s unix.Statfs_t
	if err := unix.Fstatfs(fd, &s); err != nil {
		return 0, err
	}
	return int64(s.Bavail) * s.Bsize, nil
}
