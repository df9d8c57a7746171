package fs

import (
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/gzfs/gzfs/blockfile"
)

// sizeCache remembers the logical size of files that are not open, valid as
// long as the backing file's size, mtime and ctime are unchanged, so that a
// stat does not open the engine again.
type sizeCache struct {
	mu  sync.Mutex
	max int
	m   map[fileKey]sizeEntry
}

type sizeEntry struct {
	st      stamp
	logical int64
	foreign bool // gzip but not BGZF: read-only stream
}

func (c *sizeCache) init(max int) {
	c.max = max
	c.m = make(map[fileKey]sizeEntry)
}

func (c *sizeCache) get(key fileKey, st *stat) (sizeEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || e.st != stampOf(st) {
		return sizeEntry{}, false
	}
	return e, true
}

func (c *sizeCache) put(key fileKey, st *stat, logical int64, foreign bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[key] = sizeEntry{stampOf(st), logical, foreign}
}

func (c *sizeCache) drop(key fileKey) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}

// fillAttr converts a backing stat to mount attributes; for a gzfs file the
// size is the logical size (from the open engine, the size cache, or a brief
// open of the engine, which reads the index, never the data) and st_blocks
// stays the backing file's, so du shows the real disk use.
func (fsys *FS) fillAttr(k kind, st *stat, dirfd int, bname string, out *fuse.Attr) error {
	out.FromStat(statT(st))
	if k != kindGz {
		return nil
	}
	key := fsys.keyOf(st)
	if of := fsys.files.get(key); of != nil {
		fsys.fillOpen(of, out)
		fsys.files.release(of)
		return nil
	}
	size, _, err := fsys.logicalSize(key, st, dirfd, bname)
	if err != nil {
		return err
	}
	out.Size = uint64(size)
	return nil
}

// fillOpen sets size and times of an open gzfs file: the engine knows the
// size, and data written but not yet flushed counts for st_mtime.
//
// An engine without the lock (no handle of this mount writes the file)
// follows other writers only once a second on its own: it looks at the
// backing file first, so that its view is never older than the mtime the
// kernel is told. The kernel drops its pages when that mtime changes and
// reads them again; read from an older view, they would then stay, stale,
// under the new mtime.
func (fsys *FS) fillOpen(of *openFile, out *fuse.Attr) {
	if of.eng.Unlocked() {
		of.eng.Refresh()
	}
	out.Size = uint64(of.eng.Size())
	if lw := of.lastWrite.Load(); lw > 0 {
		if mt := int64(out.Mtime)*1e9 + int64(out.Mtimensec); lw > mt {
			out.Mtime, out.Mtimensec = uint64(lw/1e9), uint32(lw%1e9)
			if ct := int64(out.Ctime)*1e9 + int64(out.Ctimensec); lw > ct {
				out.Ctime, out.Ctimensec = out.Mtime, out.Mtimensec
			}
		}
	}
}

// logicalSize returns the uncompressed size of the gzfs file bname in dirfd
// that is not open, and whether it is a foreign (non-BGZF) gzip file.
func (fsys *FS) logicalSize(key fileKey, st *stat, dirfd int, bname string) (int64, bool, error) {
	if st.Size == 0 {
		return 0, false, nil
	}
	if e, ok := fsys.sizes.get(key, st); ok {
		return e.logical, e.foreign, nil
	}
	size, err := fsys.peekSize(dirfd, bname)
	if err == nil {
		fsys.sizes.put(key, st, size, false)
		return size, false, nil
	}
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		// The daemon may not read it (a user's mount, and its owner took
		// away its own read permission): its stored size stands in, so
		// that it can still be listed and given its permission back.
		return st.Size, false, nil
	}
	var of *openFile
	if errors.Is(err, blockfile.ErrPendingJournal) {
		// Only the engine, read-write, can replay it and say.
		of, _, err = fsys.files.acquire(key, bname, func() (int, bool, error) {
			return openEngineFd(dirfd, bname, fsys.opts.ReadOnly)
		})
	}
	if errors.Is(err, blockfile.ErrNotBGZF) {
		size, isGzip, serr := fsys.foreignSize(key, dirfd, bname)
		if serr != nil {
			return 0, true, serr
		}
		if !isGzip {
			size = st.Size // not gzip at all: shown as it is, read-only
		}
		if blockfile.Settled(time.Unix(st.Mtim.Unix())) {
			// A file changed just now may be foreign only until it settles
			// (a torn tail an open then cuts): not remembered before.
			fsys.sizes.put(key, st, size, true)
		}
		return size, true, nil
	}
	if err != nil {
		return 0, false, err
	}
	size = of.eng.Size()
	fsys.files.release(of)
	fsys.sizes.put(key, st, size, false)
	return size, false, nil
}

// peekSize reads the logical size of a gzfs file that is not open without
// opening the engine: no lock, no journal replay, no index written.
func (fsys *FS) peekSize(dirfd int, bname string) (int64, error) {
	fd, _, err := openEngineFd(dirfd, bname, true)
	if err != nil {
		return 0, err
	}
	f := os.NewFile(uintptr(fd), bname)
	defer f.Close()
	return blockfile.PeekSize(f, fsys.store)
}

// foreignSize returns the uncompressed size of a gzip file that is not
// BGZF (exact once its checkpoint index is built, else its ISIZE trailer),
// and whether the file starts like gzip at all.
func (fsys *FS) foreignSize(key fileKey, dirfd int, bname string) (int64, bool, error) {
	if e := fsys.foreign.get(key); e != nil {
		size, exact := e.x.Size()
		fsys.foreign.release(e)
		if exact {
			return size, true, nil
		}
	}
	fd, err := openAt(dirfd, bname, unix.O_RDONLY, 0)
	if err != nil {
		return 0, false, err
	}
	if !isGzipFd(fd) {
		unix.Close(fd)
		return 0, false, nil
	}
	f := os.NewFile(uintptr(fd), bname)
	defer f.Close()
	size, _, err := blockfile.PeekForeignSize(f, fsys.store)
	return size, true, err
}

// isGzipFd reports whether the file starts like gzip (BGZF or not).
func isGzipFd(fd int) bool {
	f, err := blockfile.SniffFile(fdReader(fd))
	return err == nil && f != blockfile.FormatOther
}

// fdReader reads a descriptor at offsets (pread) without owning it.
type fdReader int

func (r fdReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := unix.Pread(int(r), p, off)
	if err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// statT gives go-fuse's FromStat the syscall form of a stat.
func statT(st *stat) *syscallStat {
	s := syscallStat{
		Dev: st.Dev, Ino: st.Ino, Nlink: st.Nlink, Mode: st.Mode, Uid: st.Uid, Gid: st.Gid,
		Rdev: st.Rdev, Size: st.Size, Blksize: st.Blksize, Blocks: st.Blocks,
	}
	s.Atim.Sec, s.Atim.Nsec = st.Atim.Sec, st.Atim.Nsec
	s.Mtim.Sec, s.Mtim.Nsec = st.Mtim.Sec, st.Mtim.Nsec
	s.Ctim.Sec, s.Ctim.Nsec = st.Ctim.Sec, st.Ctim.Nsec
	return &s
}
