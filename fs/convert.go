package fs

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gzfs/gzfs/blockfile"
)

// convert rewrites the plain gzip file of n as a gzfs (BGZF) file
// (mount option convert=on-write): decompressed into a new file in the
// sidecar store (hidden, same filesystem), fsynced, given the original's
// mode, owner and times, renamed over the original, and the directory
// fsynced. A crash at any point leaves the original or the complete
// converted file, never neither; a leftover temporary file in the store is
// harmless. Readers that have the original open keep reading it.
//
// Conversions run one at a time, and each converts only the file the node
// stands for: a second write open that waited for the first finds the name
// holding the converted file and gets ESTALE (the kernel looks the name up
// again and opens that). Two conversions of one file used to both rename
// over the name, and the write made through the first was lost.
func (n *node) convert() error {
	n.fsys.convertMu.Lock()
	defer n.fsys.convertMu.Unlock()
	dirfd, bname, done, err := n.where()
	if err != nil {
		return err
	}
	defer done()
	srcFd, err := openAt(dirfd, bname, unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	src := os.NewFile(uintptr(srcFd), bname)
	defer src.Close()
	st, err := statFd(srcFd)
	if err != nil {
		return err
	}
	if n.fsys.keyOf(&st) != n.key() {
		return syscall.ESTALE // converted (or replaced) since the lookup
	}
	if !isGzipFd(srcFd) {
		return fmt.Errorf("not gzip: %w", unix.EROFS) // named .gz, but not gzip: shown as it is, read-only
	}
	tmp, err := os.CreateTemp(n.fsys.store.Dir(), "convert-*.gz.tmp")
	if err != nil {
		return fmt.Errorf("temporary file for the conversion: %w", err)
	}
	tmpName := tmp.Name()
	tfd := int(tmp.Fd())
	tst, err := statFd(tfd)
	if err != nil {
		tmp.Close()
		os.Remove(tmpName)
		return err
	}
	ok := false
	defer func() {
		if !ok {
			n.fsys.forgetIno(tst.Ino) // the sidecars the engine made for it
			os.Remove(tmpName)
		}
	}()
	if err := unix.Fchmod(tfd, st.Mode&07777); err != nil {
		tmp.Close()
		return err
	}
	if n.fsys.isRoot {
		if err := unix.Fchown(tfd, int(st.Uid), int(st.Gid)); err != nil {
			tmp.Close()
			return err
		}
	}
	size, err := blockfile.ConvertGzip(src, tmp, n.backingPath(), n.fsys.engineOptions(false))
	if err != nil {
		return err
	}
	ts := [2]unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, tmpName, ts[:], 0); err != nil {
		return err
	}
	if now, err := statAt(dirfd, bname); err != nil || now.Ino != st.Ino || now.Dev != st.Dev {
		return syscall.ESTALE // the name was given to another file meanwhile: keep it
	}
	if err := unix.Renameat(unix.AT_FDCWD, tmpName, dirfd, bname); err != nil {
		return fmt.Errorf("rename the converted file into place: %w", err)
	}
	ok = true
	if d, err := openAt(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
		unix.Fsync(d)
		unix.Close(d)
	}
	key := n.fsys.keyOf(&st)
	n.fsys.sizes.drop(key)
	n.fsys.files.dropStamp(key)
	if st.Nlink <= 1 {
		n.fsys.forgetIno(st.Ino) // its checkpoint index
	}
	n.fsys.log.Info("converted a gzip file to BGZF for writing", "file", n.backingPath(), "bytes", size,
		"stored_before", st.Size)
	return nil
}
