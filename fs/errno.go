package fs

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/gzfs/gzfs/blockfile"
)

// toErrno is the one place where an error becomes an errno. It never returns
// 0 for a non-nil error. Corrupt data is EIO; an error without an errno
// inside is EIO too (go-fuse's ToErrno would make it ENOTSUP).
func toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	switch {
	case errors.Is(err, blockfile.ErrCorrupt):
		return syscall.EIO
	case errors.As(err, &errno) && errno != 0:
		return errno
	case errors.Is(err, blockfile.ErrReadOnly):
		return syscall.EROFS
	case errors.Is(err, blockfile.ErrNotBGZF):
		return syscall.EIO
	case errors.Is(err, fs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, fs.ErrExist):
		return syscall.EEXIST
	case errors.Is(err, fs.ErrPermission):
		return syscall.EACCES
	case errors.Is(err, os.ErrClosed):
		return syscall.EBADF
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case errors.Is(err, io.ErrUnexpectedEOF):
		return syscall.EIO
	}
	return syscall.EIO
}

// errno maps err with toErrno and logs what a user should see in the log:
// corrupt blocks (naming file and block) and errors that carry no errno.
func (fsys *FS) errno(op, name string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	e := toErrno(err)
	var be *blockfile.BlockError
	var raw syscall.Errno
	switch {
	case errors.As(err, &be):
		fsys.log.Error("corrupt block", "op", op, "file", name, "block", be.Block,
			"backing_offset", be.BackingOffset, "bytes", [2]int64{be.LogicalStart, be.LogicalEnd}, "err", be.Err)
	case errors.Is(err, blockfile.ErrCorrupt):
		fsys.log.Error("corrupt data", "op", op, "file", name, "err", err)
	case !errors.As(err, &raw):
		fsys.log.Error("I/O error", "op", op, "file", name, "errno", e.Error(), "err", err)
	case outOfFDs(err) && warnOutOfFDs():
		fsys.log.Warn("the daemon is out of file descriptors (files open through the mount hold two each; raise its limit, e.g. LimitNOFILE)",
			"op", op, "file", name, "limit", fdLimit(), "err", err)
	}
	return e
}
