package fs

import (
	"fmt"
	"os"
	"path/filepath"

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
func (n *node) convert() error {
	if isGzip, err := n.isForeignGzip(); err != nil || !isGzip {
		if err == nil {
			err = fmt.Errorf("not gzip: %w", unix.EROFS) // named .gz, but not gzip: shown as it is, read-only
		}
		return err
	}
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
	tmp, err := os.CreateTemp(n.fsys.store.Dir(), "convert-*.gz.tmp")
	if err != nil {
		return fmt.Errorf("temporary file for the conversion: %w", err)
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			if ino, err := inodeOfPath(tmpName); err == nil {
				n.fsys.forgetIno(ino)
			}
			os.Remove(tmpName)
		}
	}()
	tfd := int(tmp.Fd())
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

// isForeignGzip reports whether the backing file of n starts like gzip.
func (n *node) isForeignGzip() (bool, error) {
	dirfd, bname, done, err := n.where()
	if err != nil {
		return false, err
	}
	defer done()
	fd, err := openAt(dirfd, bname, unix.O_RDONLY, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	return isGzipFd(fd), nil
}

// inodeOfPath returns the inode number of the file at path.
func inodeOfPath(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(filepath.Clean(path), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
