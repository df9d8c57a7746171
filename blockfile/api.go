// Package blockfile is the random-access engine of gzfs: one compressed file
// stored as a BGZF stream (see package bgzf) that can be read and written at
// any offset. It owns the block cache, the worker pools, the seek index (see
// package blockindex) and the write-ahead journal that keeps in-place
// rewrites crash safe. Nothing in it knows about FUSE: the mount (package fs)
// and the offline commands (cmd/gzfs) are thin layers over it.
package blockfile

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// DefaultBlockSize is the uncompressed size of a block in files gzfs creates
// (15 pages of 4 KiB; chosen by measurement, see docs/format.md).
const DefaultBlockSize = 61440

// MinBlockSize and MaxBlockSize bound Options.BlockSize. The maximum leaves
// room for an incompressible block stored raw inside a 64 KiB BGZF member.
const (
	MinBlockSize = 4096
	MaxBlockSize = 65280
)

// MaxFileSize is the largest logical size of a gzfs file: 16 TiB, ext4's own
// limit with 4 KiB blocks. A truncate or write past it fails with EFBIG
// (a write that starts below it stops at it), and nothing is written. A hole
// costs about 1/450 of its size on the backing disk (docs/format.md).
const MaxFileSize int64 = 1 << 44

// DefaultLevel is the compression level used when Options.Level is 0.
const DefaultLevel = 6

// ErrCorrupt is wrapped by every error caused by damaged on-disk data
// (bad header, CRC or length mismatch, truncated member). The mount maps it
// to EIO.
var ErrCorrupt = errors.New("corrupt data")

// ErrNotBGZF means the backing file is gzip (or something else) but not a
// block-gzip stream gzfs can access at random. Callers may fall back to
// streaming decompression for reads.
var ErrNotBGZF = errors.New("not a BGZF (block gzip) file")

// ErrReadOnly is returned by writes to a File opened with Options.ReadOnly.
var ErrReadOnly = errors.New("file is read-only")

// ErrNotIdle is wrapped by Idle when the File was flushed but could not let
// go of its lock (its backing file could not be stat'ed or unlocked):
// nothing is lost; close the File instead.
var ErrNotIdle = errors.New("cannot stay open idle")

// BlockError describes one damaged block. It wraps ErrCorrupt.
type BlockError struct {
	File          string // backing file name, for messages
	Block         int64  // block number (0-based)
	BackingOffset int64  // where the member starts in the backing file
	LogicalStart  int64  // first uncompressed byte the block holds
	LogicalEnd    int64  // one past the last uncompressed byte
	Err           error  // what is wrong
}

func (e *BlockError) Error() string {
	return fmt.Sprintf("%s: block %d (backing offset %d, bytes %d-%d): %v",
		e.File, e.Block, e.BackingOffset, e.LogicalStart, e.LogicalEnd, e.Err)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *BlockError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// Options configure a File. The zero value is usable.
type Options struct {
	// Level is the deflate level 1..9 for blocks this File writes (0: DefaultLevel).
	Level int
	// BlockSize is the block size for a new (empty) file (0: DefaultBlockSize).
	// Existing files keep the block size they were written with.
	BlockSize int
	// Cache holds inflated blocks; share one across files to bound memory
	// globally. Nil gives the File a private cache of 8 MiB.
	Cache *Cache
	// Store is where the index and journal of the file live. Nil: FindStore
	// of the file's path (Open, Create); OpenFD has no path and needs it.
	Store *Store
	// ReadOnly opens the file without write access; writes fail with ErrReadOnly.
	ReadOnly bool
	// FlushInterval, when > 0, writes dirty data to the backing file this long
	// after the first unflushed write (the tail of a growing log), so a crash
	// of the process loses at most that much unsynced data.
	FlushInterval time.Duration
	// Workers bounds how many blocks this File compresses or inflates at
	// once (0: a bound all such Files share, runtime.GOMAXPROCS at the
	// first open).
	Workers int
	// LockWait is how long Open waits for the lock of a file another
	// process (or another machine's gzfs, on a shared volume) holds before
	// failing with EAGAIN (0: fail at once). A close elsewhere releases
	// the lock a moment after close(2) returns there.
	LockWait time.Duration
	// ReadWhileLocked lets Open succeed while another process (or another
	// machine's gzfs, on a shared volume) holds the file for writing: the
	// File then opens unlocked, as after Idle, and reads the file as that
	// writer leaves it (see ReadAt); its first change takes the lock, waiting
	// up to LockWait.
	ReadWhileLocked bool
	// ForeignTailTorn treats whatever follows the last whole member, when
	// it is less than one member's worth and not a whole gzip header, as a
	// torn tail even when no gzfs append left it (trailing data, a member
	// another tool left cut short): a read-write Open cuts it, a read-only
	// one passes over it. For 'gzfs fsck', which reports such a tail and
	// with --repair cuts it. Without it such bytes make Open fail with
	// ErrNotBGZF (the file is read as gzip) and are kept.
	ForeignTailTorn bool
	// Logger receives index rebuilds, journal replays and corrupt blocks.
	// Nil: slog.Default().
	Logger *slog.Logger
}

// Stats describes a File's layout.
type Stats struct {
	Size       int64  // logical (uncompressed) size
	StoredSize int64  // backing file size in bytes
	BlockSize  int    // nominal uncompressed block size
	Blocks     int64  // number of members in the backing file
	Uniform    bool   // every block but the last holds BlockSize bytes: O(1) lookup
	IndexState string // "valid", "rebuilt" or "rebuilt (reason)"
	Dirty      int    // blocks held in memory, not yet written
}
