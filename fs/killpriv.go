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

// WrapRaw wraps the mount's raw file system for what the node API does not
// carry. Set-ID bits: before a write the kernel flags
// FUSE_WRITE_KILL_SUIDGID (a caller without CAP_FSETID), and before an
// fallocate by a caller other than root, the file loses its set-ID bits,
// as the kernel itself did before; so does a file that CREATE or OPEN
// truncates for such a caller (FUSE_OPEN_KILL_SUIDGID). Truncates by
// SETATTR carry FATTR_KILL_SUIDGID to Setattr itself. File flags: each
// write carries the open file's flags as they are now (fcntl F_SETFL may
// have set or cleared O_APPEND since the open); see noteWriteFlags.
func (fsys *FS) WrapRaw(raw fuse.RawFileSystem) fuse.RawFileSystem {
	return killPrivFS{RawFileSystem: raw, fsys: fsys}
}

type killPrivFS struct {
	fuse.RawFileSystem
	fsys *FS
}

// Writev and Write (go-fuse calls Write when Writev says ENOSYS) clear
// the bits first, as a local file system does.
func (k killPrivFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	if in.WriteFlags&fuse.WRITE_KILL_SUIDGID != 0 {
		k.kill(cancel, &in.InHeader, in.Fh, "write")
	}
	defer k.fsys.noteWriteFlags(cancel, in.Flags)()
	return k.RawFileSystem.Writev(cancel, in, data)
}

func (k killPrivFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	if in.WriteFlags&fuse.WRITE_KILL_SUIDGID != 0 {
		k.kill(cancel, &in.InHeader, in.Fh, "write")
	}
	defer k.fsys.noteWriteFlags(cancel, in.Flags)()
	return k.RawFileSystem.Write(cancel, in, data)
}

// Fallocate carries no flag: a caller other than root stands for one
// without CAP_FSETID.
func (k killPrivFS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	if in.Caller.Uid != 0 {
		k.kill(cancel, &in.InHeader, in.Fh, "fallocate")
	}
	return k.RawFileSystem.Fallocate(cancel, in)
}

func (k killPrivFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	st := k.RawFileSystem.Create(cancel, in, name, out)
	if st == fuse.OK && in.OpenFlags&fuse.OPEN_KILL_SUIDGID != 0 {
		h := in.InHeader
		h.NodeId = out.NodeId
		k.kill(cancel, &h, out.Fh, "create")
	}
	return st
}

func (k killPrivFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	st := k.RawFileSystem.Open(cancel, in, out)
	if st == fuse.OK && in.Mode&fuse.OPEN_KILL_SUIDGID != 0 {
		k.kill(cancel, &in.InHeader, out.Fh, "open")
	}
	return st
}

// kill drops the set-ID bits of the file of h, through its open handle fh
// (so that an open file whose name is gone is cleared too).
func (k killPrivFS) kill(cancel <-chan struct{}, h *fuse.InHeader, fh uint64, op string) {
	set := &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{InHeader: *h, Valid: fuse.FATTR_KILL_SUIDGID | fuse.FATTR_FH, Fh: fh}}
	var out fuse.AttrOut
	if st := k.RawFileSystem.SetAttr(cancel, set, &out); st != fuse.OK {
		k.fsys.log.Error(op+": clearing the set-user-ID and set-group-ID bits failed", "node", h.NodeId, "err", syscall.Errno(st))
	}
}

// killedMode is mode (its permission bits) without what a write or
// truncate by an unprivileged caller drops: S_ISUID, and S_ISGID when the
// group may execute, the rule FUSE file systems have always had (since
// Linux 6.2 a local file system also drops S_ISGID of a file the group
// cannot execute when the writer is outside its group; the daemon does not
// know the caller's supplementary groups).
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
