package fs

import (
	"context"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// plainHandle is an open backing file shown as it is (no ".gz"): reads and
// writes go to it unchanged. An O_APPEND handle keeps O_APPEND on the
// backing descriptor, where pwrite(2) appends atomically (matchAppend
// follows fcntl F_SETFL).
type plainHandle struct {
	fsys      *FS
	fd        int
	name      string
	appending atomic.Bool // O_APPEND is set on fd
}

// newPlainHandle makes the handle of fd, opened with the open flags flags.
func newPlainHandle(fsys *FS, fd int, name string, flags uint32) *plainHandle {
	h := &plainHandle{fsys: fsys, fd: fd, name: name}
	h.appending.Store(flags&unix.O_APPEND != 0)
	return h
}

// Read reads from the backing file.
func (h *plainHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := unix.Pread(h.fd, dest, off)
	if err != nil {
		return nil, toErrno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// Write writes to the backing file.
func (h *plainHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if err := h.matchAppend(ctx); err != nil {
		return 0, toErrno(err)
	}
	n, err := unix.Pwrite(h.fd, data, off)
	if err != nil {
		return uint32(max(n, 0)), toErrno(err)
	}
	return uint32(n), 0
}

// matchAppend gives the backing descriptor the O_APPEND of the open file
// as the kernel sent it with this write (fcntl F_SETFL may have changed it
// since the open).
func (h *plainHandle) matchAppend(ctx context.Context) error {
	has := h.appending.Load()
	want := h.fsys.appendNow(ctx, has)
	if want == has {
		return nil // the usual case: no system call
	}
	fl, err := unix.FcntlInt(uintptr(h.fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if _, err := unix.FcntlInt(uintptr(h.fd), unix.F_SETFL, fl^unix.O_APPEND); err != nil {
		return err
	}
	h.appending.Store(want)
	return nil
}

// Flush reports errors of delayed writes of the backing file system at close.
func (h *plainHandle) Flush(ctx context.Context) syscall.Errno {
	fd, err := unix.Dup(h.fd)
	for reliefFor(err) {
		fd, err = unix.Dup(h.fd)
	}
	if outOfFDs(err) {
		// No descriptor to close for the check: the daemon's shortage is
		// not the program's write error (the handle's release closes the
		// backing descriptor itself).
		return 0
	}
	if err != nil {
		return toErrno(err)
	}
	return toErrno(unix.Close(fd))
}

// Fsync syncs the backing file.
func (h *plainHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if flags&1 != 0 {
		return toErrno(unix.Fdatasync(h.fd))
	}
	return toErrno(unix.Fsync(h.fd))
}

// Release closes the backing descriptor.
func (h *plainHandle) Release(ctx context.Context) syscall.Errno {
	return toErrno(unix.Close(h.fd))
}

// Lseek passes SEEK_DATA/SEEK_HOLE to the backing file.
func (h *plainHandle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	n, err := unix.Seek(h.fd, int64(off), int(whence))
	if err != nil {
		return 0, toErrno(err)
	}
	return uint64(n), 0
}

// Allocate passes fallocate(2) to the backing file.
func (h *plainHandle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	return toErrno(unix.Fallocate(h.fd, mode, int64(off), int64(size)))
}
