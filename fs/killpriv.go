package fs

import (
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Clearing the set-user-ID and set-group-ID bits when a file is written or
// truncated by a caller without CAP_FSETID is the daemon's job on this
// mount (FUSE_HANDLE_KILLPRIV_V2). Left to the kernel, it asks for the
// file's security.capability attribute before every write(2): one more
// round trip per write, a fifth of a log line appended with `>>`. gzfs
// passes only user.* attributes through, so there is never a capability
// to remove: the mode bits are all there is to clear.

// KillPrivCapability is the FUSE capability the mount asks the kernel for.
const KillPrivCapability = fuse.CAP_HANDLE_KILLPRIV_V2

// WithKillPriv wraps the mount's raw file system: after a write the kernel
// flags FUSE_WRITE_KILL_SUIDGID (a caller without CAP_FSETID), the file
// loses its set-ID bits as it would on a local file system. Truncates carry
// FATTR_KILL_SUIDGID to Setattr itself.
func (fsys *FS) WithKillPriv(raw fuse.RawFileSystem) fuse.RawFileSystem {
	return killPrivFS{RawFileSystem: raw, fsys: fsys}
}

type killPrivFS struct {
	fuse.RawFileSystem
	fsys *FS
}

// Writev and Write (go-fuse calls Write when Writev says ENOSYS) clear
// the bits after a flagged write that succeeded.
func (k killPrivFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	n, st := k.RawFileSystem.Writev(cancel, in, data)
	k.afterWrite(cancel, in, st)
	return n, st
}

func (k killPrivFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	n, st := k.RawFileSystem.Write(cancel, in, data)
	k.afterWrite(cancel, in, st)
	return n, st
}

func (k killPrivFS) afterWrite(cancel <-chan struct{}, in *fuse.WriteIn, st fuse.Status) {
	if st != fuse.OK || in.WriteFlags&fuse.WRITE_KILL_SUIDGID == 0 {
		return
	}
	set := &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{InHeader: in.InHeader, Valid: fuse.FATTR_KILL_SUIDGID}}
	var out fuse.AttrOut
	if kst := k.RawFileSystem.SetAttr(cancel, set, &out); kst != fuse.OK {
		// The data is written; the bits stay: say so.
		k.fsys.log.Error("write: clearing the set-user-ID and set-group-ID bits failed", "node", in.NodeId, "err", syscall.Errno(kst))
	}
}

// killedMode is mode (its permission bits) without what a write or
// truncate by an unprivileged caller drops: S_ISUID, and S_ISGID when the
// group may execute (without that it marks mandatory locking and stays).
// ok is false when nothing is to be dropped.
func killedMode(mode uint32) (perm uint32, ok bool) {
	kill := mode & unix.S_ISUID
	if mode&(unix.S_ISGID|unix.S_IXGRP) == unix.S_ISGID|unix.S_IXGRP {
		kill |= unix.S_ISGID
	}
	return mode & 0o7777 &^ kill, kill != 0
}

// killSUIDGID drops the set-ID bits of the backing file (the open
// descriptor fd, or bname in dirfd) as killedMode says.
func killSUIDGID(fd, dirfd int, bname string) error {
	var st unix.Stat_t
	var err error
	if fd >= 0 {
		err = unix.Fstat(fd, &st)
	} else {
		err = unix.Fstatat(dirfd, bname, &st, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return err
	}
	perm, ok := killedMode(st.Mode)
	if !ok {
		return nil
	}
	if fd >= 0 {
		return unix.Fchmod(fd, perm)
	}
	return chmodNoFollow(dirfd, bname, perm)
}
