package blockfile

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// What other processes, and other machines, see of a File's sidecars.
//
// On a local file system every process reads the one page cache: a change
// the engine makes to its mapped index is what the next process to take
// the lock reads, durable or not, and only a power loss can part the two.
// On a shared one (NFS, GlusterFS, CephFS) another machine reads what
// reached the server: pages of the index still dirty here are invisible
// there. Letting go of the lock with such pages, another machine's engine
// would take an old index whose size and tail still match the backing file
// (an in-place rewrite keeps both) and write a block at a place where
// another block now lies. So there the engine makes its index durable
// before it lets go of the lock, and its dirty flag durable before it
// changes the file in place where size and tail would not tell.

// localFS reports whether the file fd is on a file system whose readers share this
// machine's page cache (a local disk or memory file system); a variable
// for tests. Anything not known as local counts as shared: the cost of a
// mistake is an fsync of the index.
var localFS = func(fd int) bool {
	var sfs unix.Statfs_t
	if unix.Fstatfs(fd, &sfs) != nil {
		return false
	}
	switch uint32(sfs.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC,
		unix.TMPFS_MAGIC, unix.RAMFS_MAGIC, unix.F2FS_SUPER_MAGIC,
		unix.BCACHEFS_SUPER_MAGIC, unix.OVERLAYFS_SUPER_MAGIC,
		unix.REISERFS_SUPER_MAGIC, unix.NILFS_SUPER_MAGIC,
		unix.MSDOS_SUPER_MAGIC, unix.EXFAT_SUPER_MAGIC,
		zfsSuperMagic:
		return true
	}
	return false
}

// zfsSuperMagic is OpenZFS's f_type (not in the kernel's headers).
const zfsSuperMagic = 0x2fc12fc1

// sharedIndex reports whether other machines may read this File's index
// (see localFS), asked once per File. Callers hold f.mu for writing.
func (f *File) sharedIndex() bool {
	if f.onShared == 0 {
		f.onShared = 1
		if !localFS(int(f.fd.Fd())) {
			f.onShared = 2
		}
	}
	return f.onShared == 2
}

// publishIndex makes the index's changes durable before the File lets go
// of its lock (Idle, Close) when other machines may read it. Callers hold
// f.mu for writing.
func (f *File) publishIndex() error {
	if !f.idx.Unsynced() || !f.sharedIndex() {
		return nil
	}
	return f.syncIndexForOthers()
}

// syncIndexForOthers fsyncs the index so that other machines read it as
// it is now. Callers hold f.mu for writing.
func (f *File) syncIndexForOthers() error {
	f.indexSyncs++
	if err := f.idx.Sync(); err != nil {
		return fmt.Errorf("%s: %w", f.name, err)
	}
	return nil
}

// markDirtyInPlace sets the index's dirty flag before a batch rewrites a
// block before the last (moving the members after it): the only change
// after which an old index still matches the file's size and tail. Where
// other machines read the index, the flag is made durable first (unless a
// Sync did since it was set: appends set it without one), so that a
// machine that dies before its next Sync leaves an index the next writer
// rebuilds. Callers hold f.mu for writing.
func (f *File) markDirtyInPlace() error {
	if f.idx.InMemory() || !f.sharedIndex() {
		f.idx.SetDirty(true)
		return nil
	}
	if f.idx.DirtyDurable() {
		return nil
	}
	f.idx.SetDirty(true)
	return f.syncIndexForOthers()
}

// sidecarsUnchanged reports whether, as far as an idle File can tell, no
// other process wrote its sidecars while it held no lock: the journal
// holds no batch (one left by a writer that died before changing the
// backing file) and the index at its path is the one this File maps (not
// one that fsck --repair or another machine's rebuild put there). A File
// that resumed on either would replay nothing and keep writing an index
// nobody reads. Callers hold f.mu.
func (f *File) sidecarsUnchanged() bool {
	// On a shared volume the client may answer a stat from its caches
	// (NFS: several seconds): ask the server.
	how := unix.AT_SYMLINK_NOFOLLOW
	if f.sharedIndex() {
		how |= unix.AT_STATX_FORCE_SYNC
	}
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, f.store.journalPath(f.fid.Ino), how, unix.STATX_SIZE, &st); err == nil && st.Size > 0 {
		return false
	}
	x := f.idx
	if f.shared != nil {
		x = f.shared
	}
	dev, ino, ok := x.FileID()
	if !ok {
		return true // in memory: no sidecar of its own
	}
	err := unix.Statx(unix.AT_FDCWD, f.store.indexPath(f.fid.Ino), how, unix.STATX_INO, &st)
	return err == nil && st.Ino == ino && unix.Mkdev(st.Dev_major, st.Dev_minor) == dev
}
