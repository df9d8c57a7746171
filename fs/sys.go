package fs

import (
	"fmt"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stat is what gzfs needs of a backing entry: statx(2) in stat form plus the
// birth time (generation number of the node).
type stat struct {
	unix.Stat_t
	btime unix.Timespec
}

// statxMask asks for everything Stat_t holds and the birth time.
const statxMask = unix.STATX_BASIC_STATS | unix.STATX_BTIME

// statAt stats name in dirfd without following a symlink. An empty name
// stats dirfd itself.
func statAt(dirfd int, name string) (stat, error) {
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	var x unix.Statx_t
	for {
		err := unix.Statx(dirfd, name, flags, statxMask, &x)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return stat{}, err
		}
		break
	}
	return statFromStatx(&x), nil
}

// statFd stats an open descriptor.
func statFd(fd int) (stat, error) { return statAt(fd, "") }

func statFromStatx(x *unix.Statx_t) stat {
	var s stat
	s.Dev = unix.Mkdev(x.Dev_major, x.Dev_minor)
	s.Ino = x.Ino
	s.Nlink = uint64(x.Nlink)
	s.Mode = uint32(x.Mode)
	s.Uid = x.Uid
	s.Gid = x.Gid
	s.Rdev = unix.Mkdev(x.Rdev_major, x.Rdev_minor)
	s.Size = int64(x.Size)
	s.Blksize = int64(x.Blksize)
	s.Blocks = int64(x.Blocks)
	s.Atim = unix.Timespec{Sec: x.Atime.Sec, Nsec: int64(x.Atime.Nsec)}
	s.Mtim = unix.Timespec{Sec: x.Mtime.Sec, Nsec: int64(x.Mtime.Nsec)}
	s.Ctim = unix.Timespec{Sec: x.Ctime.Sec, Nsec: int64(x.Ctime.Nsec)}
	if x.Mask&unix.STATX_BTIME != 0 {
		s.btime = unix.Timespec{Sec: x.Btime.Sec, Nsec: int64(x.Btime.Nsec)}
	}
	return s
}

func (s *stat) isDir() bool { return s.Mode&unix.S_IFMT == unix.S_IFDIR }
func (s *stat) isReg() bool { return s.Mode&unix.S_IFMT == unix.S_IFREG }

// gen is the node generation: the birth time, so that a reused inode number
// is a new node.
func (s *stat) gen() uint64 {
	if s.btime.Sec == 0 && s.btime.Nsec == 0 {
		return 1
	}
	return uint64(s.btime.Sec)*1e9 + uint64(s.btime.Nsec)
}

// resolveHow keeps every path walk inside BACKING and refuses symlinks.
var resolveHow = unix.OpenHow{
	Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
}

// maxWalk is how much of a path is resolved per openat2 call; longer paths
// are walked in pieces, so depth is not limited by PATH_MAX.
const maxWalk = 2048

// openBeneath opens the relative path (its components) under dirfd with
// flags (O_PATH|O_DIRECTORY for a directory), refusing symlinks and "..".
// It returns a new descriptor.
func openBeneath(dirfd int, comps []string, flags int) (int, error) {
	cur := dirfd
	owned := false
	for len(comps) > 0 {
		n, size := 0, 0
		for n < len(comps) && (n == 0 || size+len(comps[n])+1 <= maxWalk) {
			size += len(comps[n]) + 1
			n++
		}
		p := joinPath(comps[:n])
		comps = comps[n:]
		fl := flags
		if len(comps) > 0 {
			fl = unix.O_PATH | unix.O_DIRECTORY
		}
		how := resolveHow
		how.Flags = uint64(fl | unix.O_CLOEXEC | unix.O_NOFOLLOW)
		var fd int
		var err error
		for {
			fd, err = unix.Openat2(cur, p, &how)
			if err != unix.EINTR && err != unix.EAGAIN && !reliefFor(err) {
				break
			}
		}
		if owned {
			unix.Close(cur)
		}
		if err != nil {
			return -1, err
		}
		cur, owned = fd, true
	}
	if !owned {
		return openAt(dirfd, ".", flags, 0)
	}
	return cur, nil
}

func joinPath(comps []string) string {
	if len(comps) == 0 {
		return ""
	}
	n := len(comps) - 1
	for _, c := range comps {
		n += len(c)
	}
	b := make([]byte, 0, n)
	for i, c := range comps {
		if i > 0 {
			b = append(b, '/')
		}
		b = append(b, c...)
	}
	return string(b)
}

// openAt opens name in dirfd without following a symlink.
// Out of descriptors, it closes idle engines and tries once more.
func openAt(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		if err != unix.EINTR && !reliefFor(err) {
			return fd, err
		}
	}
}

// procPath names an open descriptor for calls that have no f* form for
// O_PATH descriptors (xattrs).
func procPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// futimens sets the times of an open descriptor; a nil time is UTIME_OMIT.
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// utimensAt sets the times of name in dirfd without following a symlink.
func utimensAt(dirfd int, name string, ts *[2]unix.Timespec) error {
	return unix.UtimesNanoAt(dirfd, name, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

// wrap adds the operation and name to err for logs.
func wrap(op, name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

// chmodNoFollow changes the mode of name in dirfd, refusing a symlink (that
// may have replaced the entry in the backing tree) instead of following it.
func chmodNoFollow(dirfd int, name string, mode uint32) error {
	fd, err := openAt(dirfd, name, unix.O_PATH, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	st, err := statFd(fd)
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return unix.EOPNOTSUPP
	}
	return unix.Chmod(procPath(fd), mode)
}
