package fs

import (
	"golang.org/x/sys/unix"
)

// defaultNameMax is NAME_MAX when the backing filesystem does not say.
const defaultNameMax = 255

// backingNameMax returns the backing filesystem's NAME_MAX.
func backingNameMax(fd int) int {
	var s unix.Statfs_t
	if err := unix.Fstatfs(fd, &s); err != nil || s.Namelen <= 0 {
		return defaultNameMax
	}
	return int(s.Namelen)
}

// bname is the backing name of the mount name of kind k (see names.go).
func (fsys *FS) bname(name string, k kind) string { return backingName(name, k, fsys.nameMax) }

// readLongName reads the full name of the long backing name base
// ("gzfs.longname.HASH") from its name file in dirfd; false when the file
// is missing or does not hold a name of that hash.
func (fsys *FS) readLongName(dirfd int, base string) (string, bool) {
	fd, err := openAt(dirfd, base+longNameSuffix, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return "", false
	}
	defer unix.Close(fd)
	buf := make([]byte, fsys.nameMax+1)
	n, err := unix.Pread(fd, buf, 0)
	if err != nil || n == 0 || n > fsys.nameMax {
		return "", false
	}
	name := string(buf[:n])
	if longBase(name) != base {
		return "", false
	}
	return name, true
}

// writeLongName writes the name file of the backing name bname when it is
// in the long form (before the entry itself is made or renamed into place).
func (fsys *FS) writeLongName(dirfd int, bname, name string) error {
	nf := longNameFile(bname)
	if nf == "" {
		return nil
	}
	fd, err := openAt(dirfd, nf, unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	_, err = unix.Pwrite(fd, []byte(name), 0)
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		unix.Unlinkat(dirfd, nf, 0)
	}
	return err
}

// dropLongName removes the name file of the backing name bname, if it is in
// the long form (after the entry itself is gone or renamed away), unless an
// entry of that name is there again: another daemon over the same
// directory (another machine on a shared volume) may have made it anew
// meanwhile, its name file first, and would lose its name.
func (fsys *FS) dropLongName(dirfd int, bname string) {
	nf := longNameFile(bname)
	if nf == "" {
		return
	}
	if _, err := statAt(dirfd, bname); err == nil {
		return
	}
	if err := unix.Unlinkat(dirfd, nf, 0); err != nil && err != unix.ENOENT {
		fsys.log.Warn("removing a long-name file", "name", nf, "err", err)
	}
}
