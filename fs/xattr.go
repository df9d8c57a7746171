package fs

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// StoredSizeXattr is the read-only extended attribute that gives the size
// of a gzfs file's backing (compressed) file. It is not listed, so copies
// of the file do not carry it.
const StoredSizeXattr = "user.gzfs.stored_size"

// xattrPrefix is the only namespace passed through; "user.gzfs." is gzfs's.
const (
	xattrPrefix = "user."
	ownPrefix   = "user.gzfs."
)

// pathFd opens n as O_PATH (or uses the open file's descriptor) for calls
// through /proc/self/fd.
func (n *node) pathFd() (fd int, done func(), err error) {
	if n.kind == kindGz {
		if of := n.fsys.files.get(n.key()); of != nil {
			return of.fd, func() { n.fsys.files.release(of) }, nil
		}
	}
	if n.IsRoot() {
		return n.fsys.rootFd, noop, nil
	}
	dirfd, bname, ddone, err := n.where()
	if err != nil {
		return -1, noop, err
	}
	defer ddone()
	fd, err = openAt(dirfd, bname, unix.O_PATH, 0)
	if err != nil {
		return -1, noop, err
	}
	return fd, func() { unix.Close(fd) }, nil
}

// Getxattr reads a user.* attribute of the backing entry, or the stored size.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if attr == StoredSizeXattr && n.kind == kindGz {
		v := []byte(strconv.FormatInt(n.storedSize(), 10))
		if len(dest) == 0 {
			return uint32(len(v)), 0
		}
		if len(dest) < len(v) {
			return uint32(len(v)), syscall.ERANGE
		}
		return uint32(copy(dest, v)), 0
	}
	if !strings.HasPrefix(attr, xattrPrefix) {
		return 0, syscall.ENODATA
	}
	fd, done, err := n.pathFd()
	if err != nil {
		return 0, toErrno(err)
	}
	defer done()
	sz, err := unix.Getxattr(procPath(fd), attr, dest)
	if err != nil {
		return uint32(max(sz, 0)), toErrno(err)
	}
	return uint32(sz), 0
}

// storedSize is the backing size of a gzfs file after its last flush.
func (n *node) storedSize() int64 {
	if of := n.fsys.files.get(n.key()); of != nil {
		defer n.fsys.files.release(of)
		return of.eng.StoredSize()
	}
	dirfd, bname, done, err := n.where()
	if err != nil {
		return 0
	}
	defer done()
	st, err := statAt(dirfd, bname)
	if err != nil {
		return 0
	}
	return st.Size
}

// Setxattr sets a user.* attribute; gzfs's own are read-only.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	if strings.HasPrefix(attr, ownPrefix) {
		return syscall.EPERM
	}
	if !strings.HasPrefix(attr, xattrPrefix) {
		return syscall.EOPNOTSUPP
	}
	fd, done, err := n.pathFd()
	if err != nil {
		return toErrno(err)
	}
	defer done()
	return toErrno(unix.Setxattr(procPath(fd), attr, data, int(flags)))
}

// Removexattr removes a user.* attribute.
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	if strings.HasPrefix(attr, ownPrefix) {
		return syscall.EPERM
	}
	if !strings.HasPrefix(attr, xattrPrefix) {
		return syscall.ENODATA
	}
	fd, done, err := n.pathFd()
	if err != nil {
		return toErrno(err)
	}
	defer done()
	return toErrno(unix.Removexattr(procPath(fd), attr))
}

// Listxattr lists the user.* attributes of the backing entry.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	fd, done, err := n.pathFd()
	if err != nil {
		return 0, toErrno(err)
	}
	defer done()
	size, err := unix.Listxattr(procPath(fd), nil)
	if err != nil {
		return 0, toErrno(err)
	}
	buf := make([]byte, size)
	size, err = unix.Listxattr(procPath(fd), buf)
	if err != nil {
		return 0, toErrno(err)
	}
	var list []byte
	for _, a := range bytes.Split(buf[:size], []byte{0}) {
		s := string(a)
		if strings.HasPrefix(s, xattrPrefix) && !strings.HasPrefix(s, ownPrefix) {
			list = append(append(list, a...), 0)
		}
	}
	if len(dest) == 0 {
		return uint32(len(list)), 0
	}
	if len(dest) < len(list) {
		return uint32(len(list)), syscall.ERANGE
	}
	return uint32(copy(dest, list)), 0
}
