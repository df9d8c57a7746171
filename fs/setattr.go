package fs

import (
	"context"
	"errors"
	"syscall"

	"github.com/gzfs/gzfs/blockfile"
	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Setattr changes mode, owner, size and times (in that order, so that an
// explicit mtime is not overwritten by the truncate). It works on the open
// descriptor when there is one (ftruncate/fchmod of an unlinked open file),
// else relative to the parent directory without following symlinks.
func (n *node) Setattr(ctx context.Context, f fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	fd := -1
	var of *openFile
	if n.kind == kindGz {
		if of = n.fsys.files.get(n.key()); of != nil {
			defer n.fsys.files.release(of)
			fd = of.fd
		}
	} else if ph, ok := f.(*plainHandle); ok {
		fd = ph.fd
	}
	dirfd, bname := -1, ""
	if fd < 0 {
		var done func()
		var err error
		dirfd, bname, done, err = n.where()
		if err != nil {
			return toErrno(err)
		}
		defer done()
	}
	isLink := n.StableAttr().Mode&unix.S_IFMT == unix.S_IFLNK

	if mode, ok := in.GetMode(); ok {
		var err error
		switch {
		case fd >= 0:
			err = unix.Fchmod(fd, mode)
		case isLink:
			err = unix.EOPNOTSUPP
		default:
			err = chmodNoFollow(dirfd, bname, mode)
		}
		if err != nil {
			return toErrno(err)
		}
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		u, g := -1, -1
		if uok {
			u = int(uid)
		}
		if gok {
			g = int(gid)
		}
		var err error
		if fd >= 0 {
			err = unix.Fchown(fd, u, g)
		} else {
			err = unix.Fchownat(dirfd, bname, u, g, unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil {
			return toErrno(err)
		}
	}
	if size, ok := in.GetSize(); ok {
		if errno := n.truncate(of, fd, dirfd, bname, int64(size)); errno != 0 {
			return errno
		}
	}
	if in.Valid&fuse.FATTR_KILL_SUIDGID != 0 && !isLink {
		if err := killSUIDGID(fd, dirfd, bname); err != nil {
			return toErrno(err)
		}
	}
	if in.Valid&(fuse.FATTR_ATIME|fuse.FATTR_MTIME) != 0 {
		ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		if in.Valid&fuse.FATTR_ATIME != 0 {
			ts[0] = timeArg(in.Valid&fuse.FATTR_ATIME_NOW != 0, in.Atime, in.Atimensec)
		}
		if in.Valid&fuse.FATTR_MTIME != 0 {
			ts[1] = timeArg(in.Valid&fuse.FATTR_MTIME_NOW != 0, in.Mtime, in.Mtimensec)
		}
		var err error
		if of != nil {
			// Written data must reach the backing file before its mtime is set.
			if err := of.eng.Flush(); err != nil {
				return n.fsys.errno("flush", of.name, err)
			}
			of.lastWrite.Store(0)
		}
		if fd >= 0 {
			err = futimens(fd, &ts)
		} else {
			err = utimensAt(dirfd, bname, &ts)
		}
		if err != nil {
			return toErrno(err)
		}
	}
	return n.Getattr(ctx, f, out)
}

func timeArg(now bool, sec uint64, nsec uint32) unix.Timespec {
	if now {
		return unix.Timespec{Nsec: unix.UTIME_NOW}
	}
	return unix.Timespec{Sec: int64(sec), Nsec: int64(nsec)}
}

// truncate sets the size of a regular file.
func (n *node) truncate(of *openFile, fd, dirfd int, bname string, size int64) syscall.Errno {
	switch n.kind {
	case kindGz:
		if of == nil {
			var err error
			if of, _, err = n.acquire(); errors.Is(err, blockfile.ErrNotBGZF) {
				// Another tool's gzip is read-only, as a write open of
				// it says (truncate(2) by path does not convert it).
				n.fsys.log.Warn("truncate of a gzip file that is not BGZF: read-only", "file", n.backingPath(), "reason", err)
				return syscall.EROFS
			} else if err != nil {
				return n.fsys.errno("truncate", n.backingPath(), err)
			}
			defer n.fsys.files.release(of)
		}
		defer of.unlockIfReading() // a truncate without a writing handle took the lock
		if of.readOnly {
			return syscall.EACCES
		}
		if err := of.truncate(size); err != nil {
			return n.fsys.errno("truncate", of.name, err)
		}
		return 0
	case kindPlain:
		if fd >= 0 {
			return toErrno(unix.Ftruncate(fd, size))
		}
		wfd, err := openAt(dirfd, bname, unix.O_WRONLY, 0)
		if err != nil {
			return toErrno(err)
		}
		defer unix.Close(wfd)
		return toErrno(unix.Ftruncate(wfd, size))
	case kindDir:
		return syscall.EISDIR
	}
	return syscall.EINVAL
}
