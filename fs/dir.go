package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/gzfs/gzfs/bgzf"
)

// checkNew refuses a new mount name that is reserved or taken (in either
// backing form, "x" or "x.gz").
func (n *node) checkNew(dirfd int, name string) syscall.Errno {
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	if isReserved(name) {
		return syscall.EPERM
	}
	if len(name) > n.fsys.nameMax {
		return syscall.ENAMETOOLONG
	}
	if _, _, _, err := n.fsys.lookupAt(dirfd, name, n.dirName); err == nil {
		return syscall.EEXIST
	} else if err != syscall.ENOENT && err != unix.ENOENT {
		return toErrno(err)
	}
	return 0
}

// chownNew gives a new backing entry the owner of the caller when the daemon
// runs as root (the group of a setgid directory stays).
func (fsys *FS) chownNew(ctx context.Context, dirfd int, bname string) error {
	if !fsys.isRoot {
		return nil
	}
	caller, ok := fuse.FromContext(ctx)
	if !ok {
		return nil
	}
	if int(caller.Uid) == fsys.euid && int(caller.Gid) == fsys.egid {
		// The daemon's own credentials: the entry has the owner and group
		// the kernel would have given the caller (a set-group-ID directory
		// applies alike). Two calls fewer per create, each a round trip
		// on a network file system.
		return nil
	}
	gid := int(caller.Gid)
	if st, err := statFd(dirfd); err == nil && st.Mode&unix.S_ISGID != 0 {
		gid = -1
	}
	st, err := statAt(dirfd, bname)
	if err != nil {
		return err
	}
	if err := unix.Fchownat(dirfd, bname, int(caller.Uid), gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	// The chown cleared the set-ID bits the caller asked for; give them
	// back, as a create by the caller itself keeps them. A set-group-ID
	// bit stays cleared when the group is the directory's and not the
	// caller's (the kernel strips it for a non-member; supplementary
	// groups are not known here).
	keep := st.Mode & (unix.S_ISUID | unix.S_ISGID)
	if gid == -1 && st.Gid != caller.Gid {
		keep &^= unix.S_ISGID
	}
	if keep == 0 || st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	return unix.Fchmodat(dirfd, bname, st.Mode&0o777|keep|st.Mode&unix.S_ISVTX, 0)
}

// Create creates a gzfs file (backing name+".gz") and opens it; an
// existing file (created behind the kernel's back) is opened unless O_EXCL.
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	if n.fsys.opts.ReadOnly {
		return nil, nil, 0, syscall.EROFS
	}
	if isReserved(name) {
		return nil, nil, 0, syscall.EPERM
	}
	if len(name) > n.fsys.nameMax {
		return nil, nil, 0, syscall.ENAMETOOLONG
	}
	dirfd, done, err := n.fsys.openDir(&n.Inode)
	if err != nil {
		return nil, nil, 0, toErrno(err)
	}
	defer done()
	if k, bname, st, err := n.fsys.lookupAt(dirfd, name, n.dirName); err == nil {
		if flags&unix.O_EXCL != 0 {
			return nil, nil, 0, syscall.EEXIST
		}
		return n.createExisting(ctx, k, dirfd, bname, &st, flags, out)
	}
	bname := n.fsys.bname(name, kindGz)
	fd, err := n.fsys.createGz(dirfd, bname, name, unix.O_RDWR, mode)
	if err != nil {
		return nil, nil, 0, toErrno(err)
	}
	if err := n.fsys.chownNew(ctx, dirfd, bname); err != nil {
		n.fsys.log.Warn("chown of new file", "file", bname, "err", err)
	}
	st, err := statFd(fd)
	if err != nil {
		n.fsys.undoCreate(dirfd, bname, fd, nil)
		unix.Close(fd)
		return nil, nil, 0, toErrno(err)
	}
	key := n.fsys.keyOf(&st)
	used := false
	of, shared, err := n.fsys.files.acquire(key, n.backingPath()+"/"+bname, func() (int, bool, error) {
		if used {
			// A retry (the first try ran out of descriptors and closed
			// fd): open the file again rather than hand on a closed number.
			return openEngineFd(dirfd, bname, n.fsys.opts.ReadOnly)
		}
		used = true
		return fd, false, nil
	})
	if !used {
		unix.Close(fd)
	}
	if err != nil {
		// A create that fails (EMFILE: no descriptor for the engine even
		// after giving back idle ones) takes the name back.
		n.fsys.undoCreate(dirfd, bname, -1, &st)
		return nil, nil, 0, n.fsys.errno("create", bname, err)
	}
	out.Attr.FromStat(statT(&st))
	n.fsys.fillOpen(of, &out.Attr)
	child := n.NewInode(ctx, &node{fsys: n.fsys, kind: kindGz}, n.fsys.stableAttr(&st))
	// A new file is empty: O_TRUNC has nothing to cut (and must not move
	// st_mtime past what the reply above told the kernel).
	fh, fuseFlags, errno := n.fsys.gzHandle(nil, of, shared, flags&^unix.O_TRUNC)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	return child, fh, fuseFlags, 0
}

// createExisting opens an entry that Create found already there.
func (n *node) createExisting(ctx context.Context, k kind, dirfd int, bname string, st *stat, flags uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	switch k {
	case kindDir:
		return nil, nil, 0, syscall.EISDIR
	case kindOther:
		return nil, nil, 0, syscall.EEXIST
	}
	child, errno := n.newChild(ctx, k, dirfd, bname, st, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if k == kindPlain {
		fd, err := openAt(dirfd, bname, int(flags&openFlagsMask), 0)
		if err != nil {
			return nil, nil, 0, toErrno(err)
		}
		return child, newPlainHandle(n.fsys, fd, bname, flags), 0, 0
	}
	key := n.fsys.keyOf(st)
	of, shared, err := n.fsys.files.acquire(key, n.backingPath()+"/"+bname, func() (int, bool, error) {
		return openEngineFd(dirfd, bname, n.fsys.opts.ReadOnly)
	})
	if err != nil {
		return nil, nil, 0, n.fsys.errno("open", bname, err)
	}
	fh, fuseFlags, errno := n.fsys.gzHandle(child, of, shared, flags)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	return child, fh, fuseFlags, 0
}

// Mkdir creates a backing directory.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return n.makeEntry(ctx, name, out, kindDir, func(dirfd int) (string, error) {
		return name, unix.Mkdirat(dirfd, name, mode&07777)
	})
}

// Mknod creates a fifo, socket or device node as it is, or an empty gzfs
// file for S_IFREG.
func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if mode&unix.S_IFMT == unix.S_IFREG || mode&unix.S_IFMT == 0 {
		return n.makeEntry(ctx, name, out, kindGz, func(dirfd int) (string, error) {
			bname := n.fsys.bname(name, kindGz)
			fd, err := n.fsys.createGz(dirfd, bname, name, unix.O_WRONLY, mode)
			if err == nil {
				unix.Close(fd)
			}
			return bname, err
		})
	}
	return n.makeEntry(ctx, name, out, kindOther, func(dirfd int) (string, error) {
		return name, unix.Mknodat(dirfd, name, mode, int(rdev))
	})
}

// Symlink creates a backing symlink with the target as given.
func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return n.makeEntry(ctx, name, out, kindOther, func(dirfd int) (string, error) {
		return name, unix.Symlinkat(target, dirfd, name)
	})
}

// makeEntry checks the name, runs mk in the backing directory, and makes the
// node of what it created.
func (n *node) makeEntry(ctx context.Context, name string, out *fuse.EntryOut, k kind, mk func(dirfd int) (string, error)) (*fusefs.Inode, syscall.Errno) {
	return n.makeEntryOwned(ctx, name, out, k, true, mk)
}

// makeEntryOwned is makeEntry; owned: the entry is new and gets the
// caller as owner (a hard link is an existing inode and keeps its own).
func (n *node) makeEntryOwned(ctx context.Context, name string, out *fuse.EntryOut, k kind, owned bool, mk func(dirfd int) (string, error)) (*fusefs.Inode, syscall.Errno) {
	dirfd, done, err := n.fsys.openDir(&n.Inode)
	if err != nil {
		return nil, toErrno(err)
	}
	defer done()
	if errno := n.checkNew(dirfd, name); errno != 0 {
		return nil, errno
	}
	bname, err := mk(dirfd)
	if err != nil {
		return nil, toErrno(err)
	}
	if owned {
		if err := n.fsys.chownNew(ctx, dirfd, bname); err != nil {
			n.fsys.log.Warn("chown of new entry", "name", bname, "err", err)
		}
	}
	st, err := statAt(dirfd, bname)
	if err != nil {
		return nil, toErrno(err)
	}
	return n.newChild(ctx, k, dirfd, bname, &st, out)
}

// Link makes a hardlink: one backing inode, so one node and one engine.
func (n *node) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	t, ok := target.(*node)
	if !ok || t.fsys != n.fsys || plainCannotTake(t.kind, name) {
		return nil, syscall.EXDEV
	}
	tdirfd, tbname, tdone, err := t.where()
	if err != nil {
		return nil, toErrno(err)
	}
	defer tdone()
	return n.makeEntryOwned(ctx, name, out, t.kind, false, func(dirfd int) (string, error) {
		bname := n.fsys.bname(name, t.kind)
		if err := n.fsys.writeLongName(dirfd, bname, name); err != nil {
			return bname, err
		}
		err := unix.Linkat(tdirfd, tbname, dirfd, bname, 0)
		if err != nil {
			n.fsys.dropLongName(dirfd, bname)
		}
		return bname, err
	})
}

// Unlink removes a name; when it was the last link of a gzfs file, its
// sidecars are forgotten (at the last close if the file is still open).
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	dirfd, done, err := n.fsys.openDir(&n.Inode)
	if err != nil {
		return toErrno(err)
	}
	defer done()
	k, bname, st, err := n.fsys.lookupAt(dirfd, name, n.dirName)
	if err != nil {
		return toErrno(err)
	}
	if k == kindDir {
		return syscall.EISDIR
	}
	if err := unix.Unlinkat(dirfd, bname, 0); err != nil {
		return toErrno(err)
	}
	n.fsys.dropLongName(dirfd, bname)
	if k == kindGz && st.Nlink <= 1 {
		n.fsys.lastLinkGone(&st)
	}
	return 0
}

// Rmdir removes a backing directory.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	if isReserved(name) {
		return syscall.ENOENT
	}
	dirfd, done, err := n.fsys.openDir(&n.Inode)
	if err != nil {
		return toErrno(err)
	}
	defer done()
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil {
		return toErrno(err)
	}
	if child := n.GetChild(name); child != nil {
		n.fsys.dirs.forget(child)
	}
	return 0
}

// lastLinkGone forgets what gzfs keeps for a backing inode without links.
func (fsys *FS) lastLinkGone(st *stat) {
	key := fsys.keyOf(st)
	fsys.sizes.drop(key)
	fsys.files.dropStamp(key)
	if fsys.files.markForget(key) {
		// Open, going idle, idle or being resumed: its sidecars go when
		// it closes, which an idle one does now.
		fsys.files.evict(key)
		return
	}
	if fsys.foreign.forgetAtLastRelease(key) {
		return // open: its checkpoint index may still be written
	}
	fsys.forgetIno(st.Ino)
}

// forgetIno removes the sidecars of a backing inode.
func (fsys *FS) forgetIno(ino uint64) {
	if fsys.store == nil {
		return
	}
	if err := fsys.store.Forget(ino); err != nil {
		fsys.log.Warn("forget sidecars", "ino", ino, "err", err)
	}
}

// createGz creates the backing file of a new gzfs file (O_EXCL), writing
// the name file of a long name first.
func (fsys *FS) createGz(dirfd int, bname, name string, access int, mode uint32) (int, error) {
	if err := fsys.writeLongName(dirfd, bname, name); err != nil {
		return -1, err
	}
	fd, err := createFilled(dirfd, bname, access, mode)
	if err != nil && err != unix.EEXIST {
		fsys.dropLongName(dirfd, bname)
	}
	return fd, err
}

// undoCreate removes the name createGz made, after the create failed
// before the kernel heard of it: only while the name is still the file made
// (fd, or made when the create has no descriptor left) and holds nothing
// but the EOF marker, and no other process holds its lock (another daemon
// over the same directory may have opened it meanwhile: a writer holds the
// lock while its data is still in memory). Without a descriptor to lock
// (the daemon at its limit) the name and size decide alone.
func (fsys *FS) undoCreate(dirfd int, bname string, fd int, made *stat) {
	if fd < 0 {
		if fd, _ = openAt(dirfd, bname, unix.O_RDONLY|unix.O_NOATIME, 0); fd >= 0 {
			defer unix.Close(fd)
		}
	}
	if fd >= 0 {
		if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
			return
		}
		defer unix.Flock(fd, unix.LOCK_UN)
		st, err := statFd(fd)
		if err != nil || made != nil && (st.Ino != made.Ino || st.Dev != made.Dev) {
			return
		}
		made = &st
	}
	if made == nil {
		return
	}
	now, err := statAt(dirfd, bname)
	if err != nil || now.Ino != made.Ino || now.Dev != made.Dev || now.Size != int64(len(bgzf.EOFMember)) {
		return
	}
	if err := unix.Unlinkat(dirfd, bname, 0); err == nil {
		fsys.dropLongName(dirfd, bname)
	}
}

// createFilled creates bname (O_EXCL) holding the BGZF EOF marker, an
// empty gzfs file: written at once, so that the size, blocks and mtime the
// kernel caches from the create reply stay those of the file after its
// first close. Where the filesystem makes unnamed files (O_TMPFILE), the
// marker is written before the file gets its name (linkat), so a daemon
// killed in between never leaves an empty backing file: that is no gzip
// (gzip -t fails on it), and a program that finds its file empty may leave
// it so (SQLite, a journal it finds empty). Elsewhere (GlusterFS, NFS) the
// file is created, then written. O_NOATIME: the engine's own reads must not
// change st_atime (see openEngineFd).
func createFilled(dirfd int, bname string, access int, mode uint32) (int, error) {
	if fd, err := createUnnamed(dirfd, bname, access, mode); err == nil || !noTmpfile(err) {
		return fd, err // EEXIST as O_EXCL gives it, ENOSPC, EDQUOT...
	}
	fd, err := openAt(dirfd, bname, unix.O_CREAT|unix.O_EXCL|unix.O_NOATIME|access, mode&07777)
	if err != nil {
		return -1, err
	}
	if _, err := unix.Pwrite(fd, bgzf.EOFMember, 0); err != nil {
		unix.Close(fd)
		unix.Unlinkat(dirfd, bname, 0)
		return -1, err
	}
	return fd, nil
}

// createUnnamed is createFilled through O_TMPFILE: the file is made
// unnamed, given the EOF marker, then linked as bname.
func createUnnamed(dirfd int, bname string, access int, mode uint32) (int, error) {
	fd, err := openAt(dirfd, ".", unix.O_TMPFILE|unix.O_NOATIME|access, mode&07777)
	if err != nil {
		return -1, err
	}
	if _, err = unix.Pwrite(fd, bgzf.EOFMember, 0); err == nil {
		// AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (a root daemon); the
		// path through /proc does not, and costs a path walk.
		if err = unix.Linkat(fd, "", dirfd, bname, unix.AT_EMPTY_PATH); err == unix.EPERM || err == unix.ENOENT {
			err = unix.Linkat(unix.AT_FDCWD, procPath(fd), dirfd, bname, unix.AT_SYMLINK_FOLLOW)
		}
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// noTmpfile reports whether err says that the directory's filesystem
// cannot make an unnamed file, or that it cannot be linked through /proc.
func noTmpfile(err error) bool {
	switch err {
	case unix.EOPNOTSUPP, unix.EISDIR, unix.EINVAL, unix.ENOSYS, unix.ENOENT, unix.EXDEV:
		return true
	}
	return false
}
