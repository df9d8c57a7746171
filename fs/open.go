package fs

import (
	"context"
	"errors"
	"path"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/gzfs/gzfs/blockfile"
)

// openFlagsMask are the open(2) flags passed on to a plain backing file.
const openFlagsMask = unix.O_ACCMODE | unix.O_APPEND | unix.O_TRUNC | unix.O_NONBLOCK |
	unix.O_SYNC | unix.O_DSYNC | unix.O_NOATIME

func wantsWrite(flags uint32) bool { return flags&unix.O_ACCMODE != unix.O_RDONLY }

// backingPath is the backing path of n for messages.
func (n *node) backingPath() string {
	p := n.Path(nil)
	if n.kind == kindGz && !n.IsRoot() {
		dir, name := path.Split(p)
		p = dir + n.fsys.bname(name, kindGz)
	}
	return path.Join(n.fsys.backing, p)
}

// acquire returns the shared engine instance of the gzfs file n, opening
// the backing file read-write when possible (read-only on a read-only mount
// or when the backing file cannot be written).
func (n *node) acquire() (*openFile, bool, error) {
	fsys := n.fsys
	return fsys.files.acquire(n.key(), n.backingPath(), func() (int, bool, error) {
		dirfd, bname, done, err := n.where()
		if err != nil {
			return -1, false, err
		}
		defer done()
		return openEngineFd(dirfd, bname, fsys.opts.ReadOnly)
	})
}

// openEngineFd opens a backing file for the engine: read-write unless the
// mount is read-only or the file cannot be written. O_NOATIME keeps the
// engine's own reads (index checks at open) from changing st_atime, which
// then only utimensat(2) changes (where the kernel allows O_NOATIME).
func openEngineFd(dirfd int, bname string, readOnly bool) (int, bool, error) {
	try := func(flags int) (int, error) {
		fd, err := openAt(dirfd, bname, flags|unix.O_NOATIME, 0)
		if err == unix.EPERM {
			fd, err = openAt(dirfd, bname, flags, 0)
		}
		return fd, err
	}
	if !readOnly {
		fd, err := try(unix.O_RDWR)
		if err == nil {
			return fd, false, nil
		}
		if err != unix.EACCES && err != unix.EPERM && err != unix.EROFS && err != unix.ETXTBSY {
			return -1, false, err
		}
	}
	fd, err := try(unix.O_RDONLY)
	return fd, true, err
}

// Open opens a regular file: a gzfs file through the shared engine, a plain
// file as it is.
func (n *node) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if wantsWrite(flags) && n.fsys.opts.ReadOnly {
		return nil, 0, syscall.EROFS
	}
	switch n.kind {
	case kindGz:
		return n.openGz(flags)
	case kindPlain:
		dirfd, bname, done, err := n.where()
		if err != nil {
			return nil, 0, toErrno(err)
		}
		defer done()
		fd, err := openAt(dirfd, bname, int(flags&openFlagsMask), 0)
		if err != nil {
			return nil, 0, toErrno(err)
		}
		return newPlainHandle(n.fsys, fd, bname, flags), 0, 0
	case kindDir:
		return nil, 0, syscall.EISDIR
	}
	return nil, 0, syscall.EINVAL
}

func (n *node) openGz(flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	of, shared, err := n.acquire()
	if errors.Is(err, blockfile.ErrNotBGZF) {
		if wantsWrite(flags) && n.fsys.opts.ConvertOnWrite {
			if err := n.convert(); err != nil {
				return nil, 0, n.fsys.errno("convert to BGZF", n.backingPath(), err)
			}
			// The name now holds the converted file, a new inode: ESTALE
			// makes the kernel look it up again and retry the open.
			return nil, 0, syscall.ESTALE
		}
		if wantsWrite(flags) {
			// Say why (another tool's gzip, or its bytes after BGZF blocks).
			n.fsys.log.Warn("write open of a gzip file that is not BGZF: read-only (convert=on-write converts it; 'gzfs fsck --repair' cuts bytes of another tool after the last block)",
				"file", n.backingPath(), "reason", err)
		}
		return n.openStream(flags)
	}
	if err != nil {
		return nil, 0, n.fsys.errno("open", n.backingPath(), err)
	}
	return n.fsys.gzHandle(&n.Inode, of, shared, flags)
}

// gzHandle makes the handle of an acquired engine instance. in is the
// file's inode (nil for a file just created).
func (fsys *FS) gzHandle(in *fusefs.Inode, of *openFile, shared bool, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	write := wantsWrite(flags)
	if write && of.readOnly {
		fsys.files.release(of)
		return nil, 0, syscall.EACCES
	}
	if write {
		// One writer per file across machines: EAGAIN while another holds
		// it. Taking the lock reloads a file another changed.
		if err := of.lockForWrite(); err != nil {
			fsys.files.release(of)
			return nil, 0, fsys.errno("open", of.name, err)
		}
	} else if of.eng.Unlocked() {
		// Close-to-open: an engine that another machine's writer may have
		// changed looks at the backing file now (one that held the lock
		// until this open has seen every change).
		of.eng.Refresh()
	} else {
		of.unlockIfReading()
	}
	// If the engine loaded the file anew since the kernel cached pages of
	// it, those pages are not kept.
	gen := of.eng.Generation()
	reloaded := of.pagesGen.Swap(gen) != gen
	var fuseFlags uint32
	if flags&unix.O_TRUNC != 0 && write {
		if err := of.truncate(0); err != nil {
			of.releaseWriter()
			fsys.files.release(of)
			return nil, 0, fsys.errno("truncate", of.name, err)
		}
	} else if shared && !reloaded {
		fuseFlags |= fuse.FOPEN_KEEP_CACHE
	} else if st, err := statFd(of.fd); err == nil && !reloaded && fsys.files.unchanged(of.key, &st) {
		fuseFlags |= fuse.FOPEN_KEEP_CACHE
	} else if in != nil {
		// Close-to-open: the file may have changed beside this mount (another
		// machine on a shared volume, another program in BACKING) since the
		// kernel cached its attributes. Drop them before the open returns,
		// so that the reads after it see the size the engine sees now (the
		// kernel drops the cached pages itself: no FOPEN_KEEP_CACHE).
		in.NotifyContent(-1, 0)
	}
	if !write {
		// A reader's close has nothing to flush (Flush returns at once):
		// the kernel skips the round trip.
		fuseFlags |= fuse.FOPEN_NOFLUSH
	}
	return &gzHandle{fsys: fsys, of: of, write: write, append: flags&unix.O_APPEND != 0}, fuseFlags, 0
}

// openStream opens a foreign gzip file read-only.
func (n *node) openStream(flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if wantsWrite(flags) {
		return nil, 0, syscall.EROFS
	}
	dirfd, bname, done, err := n.where()
	if err != nil {
		return nil, 0, toErrno(err)
	}
	defer done()
	fd, err := openAt(dirfd, bname, unix.O_RDONLY, 0)
	if err != nil {
		return nil, 0, toErrno(err)
	}
	name := n.backingPath()
	if !isGzipFd(fd) {
		// Named .gz but not gzip: its bytes as they are, read-only.
		n.fsys.log.Warn("a .gz file that is not gzip is shown as it is, read-only", "file", name)
		return newPlainHandle(n.fsys, fd, name, unix.O_RDONLY), fuse.FOPEN_NOFLUSH, 0
	}
	e, err := n.fsys.foreign.acquire(n.key(), name, fd)
	if err != nil {
		return nil, 0, n.fsys.errno("open", name, err)
	}
	// Indexed, its size is exact: reads go through the page cache and the
	// kernel's read-ahead (which keeps several spans in flight). Until then
	// st_size is only the ISIZE trailer, so reads bypass the cache. So do
	// those of a damaged file, whose st_size is what can be read: the
	// kernel would stop at st_size, and the read there must fail (EIO)
	// rather than look like the end of the file.
	var fuseFlags uint32 = fuse.FOPEN_DIRECT_IO | fuse.FOPEN_NOFLUSH
	if e.x.Indexed() && e.x.Stats().Damaged < 0 {
		fuseFlags = fuse.FOPEN_NOFLUSH
		if !e.sizeTold.Swap(true) {
			// The kernel may still hold the ISIZE of a stat made before
			// the index existed: it would end the reads there.
			n.NotifyContent(-1, 0)
		}
	}
	return &foreignHandle{fsys: n.fsys, e: e, direct: fuseFlags&fuse.FOPEN_DIRECT_IO != 0}, fuseFlags, 0
}
