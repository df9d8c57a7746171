package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is one inode of the mount. It holds only its kind; its backing
// location comes from the go-fuse tree at each operation, and open state
// lives in the FS's open-file table.
type node struct {
	fusefs.Inode
	fsys *FS
	kind kind
}

// components returns the mount path of the directory inode in as a list of
// names from the root; an inode cut off from the root is ENOENT.
func components(in *fusefs.Inode) ([]string, error) {
	var rev []string
	for !in.IsRoot() {
		name, parent := in.Parent()
		if parent == nil {
			return nil, syscall.ENOENT
		}
		rev = append(rev, name)
		in = parent
	}
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return rev, nil
}

func noop() {}

// where returns the backing directory descriptor and backing name of n
// (for the root: the root descriptor and "").
func (n *node) where() (dirfd int, bname string, done func(), err error) {
	if n.IsRoot() {
		return n.fsys.rootFd, "", noop, nil
	}
	name, parent := n.Parent()
	if parent == nil {
		return -1, "", noop, syscall.ENOENT
	}
	dirfd, done, err = n.fsys.openDir(parent)
	if err != nil {
		return -1, "", noop, err
	}
	return dirfd, n.fsys.bname(name, n.kind), done, nil
}

// dirName is the mount path of n, for messages.
func (n *node) dirName() string { return "/" + n.Path(nil) }

// lookupAt finds the backing entry of the mount name in dirfd (see
// entryName for the rules).
func (fsys *FS) lookupAt(dirfd int, name string, dirName func() string) (k kind, bname string, st stat, err error) {
	if isReserved(name) {
		return 0, "", stat{}, syscall.ENOENT
	}
	if len(name) > fsys.nameMax {
		return 0, "", stat{}, syscall.ENAMETOOLONG
	}
	st, err = statAt(dirfd, name)
	if err == nil {
		if _, gz := gzMountName(name); !(gz && st.isReg()) {
			switch {
			case st.isDir():
				k = kindDir
			case st.isReg():
				k = kindPlain
				if gst, gerr := statAt(dirfd, fsys.bname(name, kindGz)); gerr == nil && gst.isReg() {
					fsys.logClash(dirName(), name)
				}
			default:
				k = kindOther
			}
			return k, name, st, nil
		}
	} else if err != unix.ENOENT && err != unix.ENAMETOOLONG {
		return 0, "", stat{}, err
	}
	bname = fsys.bname(name, kindGz)
	st, err = statAt(dirfd, bname)
	if err != nil {
		return 0, "", stat{}, err
	}
	if !st.isReg() {
		return 0, "", stat{}, syscall.ENOENT
	}
	return kindGz, bname, st, nil
}

// newChild makes (or finds, for a hardlink) the node of a backing entry and
// fills out.
func (n *node) newChild(ctx context.Context, k kind, dirfd int, bname string, st *stat, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if err := n.fsys.fillAttr(k, st, dirfd, bname, &out.Attr); err != nil {
		return nil, n.fsys.errno("lookup", bname, err)
	}
	child := n.NewInode(ctx, &node{fsys: n.fsys, kind: k}, n.fsys.stableAttr(st))
	if k == kindDir {
		n.fsys.dirs.forget(child)
	}
	return child, 0
}

// Lookup finds a child by its mount name.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	dirfd, done, err := n.fsys.openDir(&n.Inode)
	if err != nil {
		return nil, toErrno(err)
	}
	defer done()
	return n.lookupIn(ctx, dirfd, name, out)
}

func (n *node) lookupIn(ctx context.Context, dirfd int, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	k, bname, st, err := n.fsys.lookupAt(dirfd, name, n.dirName)
	if err != nil {
		return nil, toErrno(err)
	}
	return n.newChild(ctx, k, dirfd, bname, &st, out)
}

// Getattr stats the backing entry; an open gzfs file answers from its open
// descriptor and engine (so an unlinked open file still has attributes).
func (n *node) Getattr(ctx context.Context, f fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if n.kind == kindGz {
		if of := n.fsys.files.get(n.key()); of != nil {
			defer n.fsys.files.release(of)
			st, err := statFd(of.fd)
			if err != nil {
				return n.fsys.errno("fstat", of.name, err)
			}
			out.FromStat(statT(&st))
			n.fsys.fillOpen(of, &out.Attr)
			return 0
		}
	}
	if ph, ok := f.(*plainHandle); ok {
		st, err := statFd(ph.fd)
		if err != nil {
			return toErrno(err)
		}
		out.FromStat(statT(&st))
		return 0
	}
	if fh, ok := f.(*foreignHandle); ok {
		// The file this handle reads, not whatever now has its name.
		st, err := statFd(fh.e.x.Fd())
		if err != nil {
			return toErrno(err)
		}
		out.FromStat(statT(&st))
		size, _ := fh.e.x.Size()
		out.Size = uint64(size)
		return 0
	}
	dirfd, bname, done, err := n.where()
	if err != nil {
		return toErrno(err)
	}
	defer done()
	st, err := statAt(dirfd, bname)
	if err != nil {
		return toErrno(err)
	}
	if err := n.fsys.fillAttr(n.kind, &st, dirfd, bname, &out.Attr); err != nil {
		return n.fsys.errno("getattr", bname, err)
	}
	return 0
}

// Access answers access(2) when the kernel does not check permissions
// itself (a mount without default_permissions, whose only user is the one
// who mounted it, so the daemon's own credentials are the caller's): the
// backing entry is asked with faccessat.
func (n *node) Access(ctx context.Context, mask uint32) syscall.Errno {
	dirfd, bname, done, err := n.where()
	if err != nil {
		return toErrno(err)
	}
	defer done()
	if bname == "" {
		bname = "."
	}
	return toErrno(unix.Faccessat(dirfd, bname, mask, unix.AT_EACCESS|unix.AT_SYMLINK_NOFOLLOW))
}

// Readlink reads a symlink of the backing tree as it is.
func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	dirfd, bname, done, err := n.where()
	if err != nil {
		return nil, toErrno(err)
	}
	defer done()
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		m, err := unix.Readlinkat(dirfd, bname, buf)
		if err != nil {
			return nil, toErrno(err)
		}
		if m < size {
			return buf[:m], 0
		}
	}
}

// Statfs reports the backing file system, so df shows its space.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var s syscall.Statfs_t
	if err := syscall.Fstatfs(n.fsys.rootFd, &s); err != nil {
		return toErrno(err)
	}
	out.FromStatfsT(&s)
	return 0
}
