package blockfile

import (
	"io"
	"os"
)

// File is one compressed file opened for random access. All methods are safe
// for concurrent use: reads run in parallel with each other; writes, truncates
// and flushes are serialized with them.
type File struct {
	name string
}

// Open opens the backing file at path (read-write unless opts.ReadOnly).
// A pending journal is replayed and the index validated or rebuilt first.
// An empty file is a valid empty gzfs file.
func Open(path string, opts Options) (*File, error) { panic("todo") }

// Create creates (or truncates to empty) the backing file at path.
func Create(path string, perm os.FileMode, opts Options) (*File, error) { panic("todo") }

// OpenFD makes a File of an already opened backing file (for the mount, which
// opens files relative to a directory fd). name is used in messages. The File
// owns fd from now on and closes it in Close. fd must be opened O_RDWR unless
// opts.ReadOnly.
func OpenFD(fd *os.File, name string, opts Options) (*File, error) { panic("todo") }

// ReadAt reads len(p) bytes at logical offset off. Like os.File.ReadAt it
// returns io.EOF when fewer bytes are available. A damaged block gives an
// error wrapping ErrCorrupt (a *BlockError) and nothing of that block.
func (f *File) ReadAt(p []byte, off int64) (int, error) { panic("todo") }

// WriteAt writes p at logical offset off, growing the file (with zeros in any
// gap) when off+len(p) > Size().
func (f *File) WriteAt(p []byte, off int64) (int, error) { panic("todo") }

// Append writes p at the current end of the file atomically with respect to
// other writers and returns the offset it was written at (O_APPEND).
func (f *File) Append(p []byte) (int64, error) { panic("todo") }

// Truncate changes the logical size; growth reads as zeros.
func (f *File) Truncate(size int64) error { panic("todo") }

// Size returns the logical size in O(1).
func (f *File) Size() int64 { panic("todo") }

// StoredSize returns the size of the backing file in bytes (after the last flush).
func (f *File) StoredSize() int64 { panic("todo") }

// Flush compresses and writes all dirty blocks to the backing file without
// fsync: after it returns the data survives a crash of this process.
func (f *File) Flush() error { panic("todo") }

// Sync flushes, then makes data and index durable (fsync): after it returns
// the data survives power loss.
func (f *File) Sync() error { panic("todo") }

// Close flushes and releases the File. It closes the backing file.
func (f *File) Close() error { panic("todo") }

// Stats describes the layout of the file.
func (f *File) Stats() Stats { panic("todo") }

// Check inflates and verifies every block, calling bad for each damaged one.
// It returns the number of damaged blocks. progress, if not nil, is called
// with the backing bytes checked so far.
func (f *File) Check(bad func(*BlockError), progress func(done int64)) (int, error) {
	panic("todo")
}

// ExportGZI writes the index in htslib's .gzi layout: a uint64 count, then
// (compressed offset, uncompressed offset) uint64 pairs for every block but
// the first, all little-endian.
func (f *File) ExportGZI(w io.Writer) error { panic("todo") }

// Name returns the name given at open, for messages.
func (f *File) Name() string { return f.name }

// Store locates the sidecar files (seek index and journal) of the backing
// files on one filesystem: a directory named ".gzfs", keyed by inode number,
// so that renames and hardlinks keep one index per file.
type Store struct {
	dir string
}

// StoreDirName is the name of the sidecar directory. The mount hides it.
const StoreDirName = ".gzfs"

// OpenStore opens (creating if needed) the sidecar directory dir.
func OpenStore(dir string) (*Store, error) { panic("todo") }

// FindStore returns the store of the file at path: the nearest ".gzfs"
// directory in the file's directory or its ancestors on the same filesystem,
// or a new one in the file's directory when there is none.
func FindStore(path string) (*Store, error) { panic("todo") }

// Forget removes the sidecars kept for the backing inode ino (call it when
// the last link of a file is removed).
func (s *Store) Forget(ino uint64) error { panic("todo") }

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Cache is a bounded LRU of inflated blocks, shareable between Files.
type Cache struct{}

// NewCache returns a cache holding at most maxBytes of inflated blocks.
func NewCache(maxBytes int64) *Cache { panic("todo") }

// IsBGZF reports whether the first bytes of a file (at least 18) are a BGZF
// member header; an empty prefix (empty file) counts as BGZF.
func IsBGZF(prefix []byte) bool { panic("todo") }
