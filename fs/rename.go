package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
)

// Rename moves a name, over an existing one, across directories, with
// RENAME_NOREPLACE or RENAME_EXCHANGE. The backing name follows the kind of
// the moved entry (a gzfs file "a" renamed to "b" is "a.gz" -> "b.gz"). When
// the replaced entry has the other backing form ("b" plain replaced by a
// gzfs file), it is removed after the rename; an exchange of entries of
// different forms is two renames (not atomic).
func (n *node) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	np, ok := newParent.(*node)
	if !ok || np.fsys != n.fsys {
		return syscall.EXDEV
	}
	if isReserved(newName) || isReserved(name) {
		return syscall.EPERM
	}
	if flags&^uint32(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE) != 0 {
		return syscall.EINVAL
	}
	sfd, sdone, err := n.fsys.openDir(&n.Inode)
	if err != nil {
		return toErrno(err)
	}
	defer sdone()
	dfd := sfd
	if np != n {
		var ddone func()
		dfd, ddone, err = n.fsys.openDir(&np.Inode)
		if err != nil {
			return toErrno(err)
		}
		defer ddone()
	}
	sk, sb, sst, err := n.fsys.lookupAt(sfd, name, n.dirName)
	if err != nil {
		return toErrno(err)
	}
	dk, db, dst, derr := n.fsys.lookupAt(dfd, newName, np.dirName)
	if derr != nil && derr != syscall.ENOENT && derr != unix.ENOENT {
		return toErrno(derr)
	}
	exists := derr == nil
	if plainCannotTake(sk, newName) || exists && flags&unix.RENAME_EXCHANGE != 0 && plainCannotTake(dk, name) {
		return syscall.EXDEV
	}
	target := n.fsys.bname(newName, sk)

	if flags&unix.RENAME_EXCHANGE != 0 {
		if !exists {
			return syscall.ENOENT
		}
		if target == db {
			// Same backing forms: the names stay, so do their name files.
			return toErrno(unix.Renameat2(sfd, sb, dfd, db, unix.RENAME_EXCHANGE))
		}
		back := n.fsys.bname(name, dk)
		if err := n.fsys.writeLongName(dfd, target, newName); err != nil {
			return toErrno(err)
		}
		if err := n.fsys.writeLongName(sfd, back, name); err != nil {
			return toErrno(err)
		}
		if err := unix.Renameat2(sfd, sb, dfd, target, unix.RENAME_NOREPLACE); err != nil {
			return toErrno(err)
		}
		if err := unix.Renameat2(dfd, db, sfd, back, unix.RENAME_NOREPLACE); err != nil {
			unix.Renameat2(dfd, target, sfd, sb, unix.RENAME_NOREPLACE)
			return toErrno(err)
		}
		n.fsys.dropLongName(sfd, sb)
		n.fsys.dropLongName(dfd, db)
		return 0
	}
	if exists && flags&unix.RENAME_NOREPLACE != 0 {
		return syscall.EEXIST
	}
	sameEntry := np == n && sb == target
	if exists && dst.Dev == sst.Dev && dst.Ino == sst.Ino && (sameEntry || target == db) {
		// Two names of one file: rename(2) does nothing.
		return 0
	}
	if err := n.fsys.writeLongName(dfd, target, newName); err != nil {
		return toErrno(err)
	}
	var err2 error
	if !exists || target != db {
		// Nothing of that form under the target name: never replace an
		// entry the mount does not show under newName.
		err2 = unix.Renameat2(sfd, sb, dfd, target, unix.RENAME_NOREPLACE)
	} else {
		err2 = unix.Renameat(sfd, sb, dfd, target)
	}
	if err2 != nil {
		if !exists || target != db {
			n.fsys.dropLongName(dfd, target)
		}
		return toErrno(err2)
	}
	if !sameEntry {
		n.fsys.dropLongName(sfd, sb)
	}
	if exists && (dst.Dev != sst.Dev || dst.Ino != sst.Ino) {
		if target != db {
			fl := 0
			if dk == kindDir {
				fl = unix.AT_REMOVEDIR
			}
			if err := unix.Unlinkat(dfd, db, fl); err != nil {
				n.fsys.log.Warn("rename: removing the replaced entry", "name", db, "err", err)
				return toErrno(err)
			}
			n.fsys.dropLongName(dfd, db)
		}
		if dk == kindGz && dst.Nlink <= 1 {
			n.fsys.lastLinkGone(&dst)
		}
		if dk == kindDir {
			if old := np.GetChild(newName); old != nil {
				n.fsys.dirs.forget(old) // the replaced directory is gone
			}
		}
	}
	return 0
}
