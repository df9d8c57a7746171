package fs

import (
	"context"
	"encoding/binary"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// dirHandle is an open directory: the backing entries are read once (with
// the name rules of entryName applied) and served in order; READDIRPLUS
// lookups run relative to the same descriptor.
type dirHandle struct {
	n       *node
	fd      int
	entries []fuse.DirEntry
	backing []backingEntry // per entry: where it is in the backing directory
	pos     int
	loaded  bool
}

// OpendirHandle opens the backing directory for reading.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	comps, err := components(&n.Inode)
	if err != nil {
		return nil, 0, toErrno(err)
	}
	fd, err := openBeneath(n.fsys.rootFd, comps, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, 0, toErrno(err)
	}
	return &dirHandle{n: n, fd: fd}, 0, 0
}

// Readdirent returns the next entry, nil at the end.
func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if !h.loaded {
		if err := h.load(); err != nil {
			return nil, toErrno(err)
		}
	}
	if h.pos >= len(h.entries) {
		return nil, 0
	}
	e := h.entries[h.pos]
	h.pos++
	return &e, 0
}

// Seekdir moves to an offset given out by Readdirent (0: rewind and reread).
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off == 0 {
		h.loaded, h.pos = false, 0
		return 0
	}
	if !h.loaded {
		if err := h.load(); err != nil {
			return toErrno(err)
		}
	}
	if off > uint64(len(h.entries)) {
		return syscall.EINVAL
	}
	h.pos = int(off)
	return 0
}

// backingEntry is the backing name and kind a listed entry was read from.
type backingEntry struct {
	name string
	kind kind
}

// Lookup serves READDIRPLUS relative to the open directory. The entry just
// listed (go-fuse looks up each entry right after Readdirent returns it) is
// found by its backing name at once: one stat, where a lookup by mount name
// first asks whether a plain file of that name exists. If the backing entry
// changed since the listing, the lookup by name decides.
func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if i := h.pos - 1; i >= 0 && i < len(h.backing) && h.entries[i].Name == name && h.backing[i].name != "" {
		b := h.backing[i]
		if st, err := statAt(h.fd, b.name); err == nil && kindMatches(b.kind, &st) {
			return h.n.newChild(ctx, b.kind, h.fd, b.name, &st, out)
		}
	}
	return h.n.lookupIn(ctx, h.fd, name, out)
}

// kindMatches reports whether a backing entry of kind k (as listed) still
// has a type of that kind.
func kindMatches(k kind, st *stat) bool {
	switch k {
	case kindGz, kindPlain:
		return st.isReg()
	case kindDir:
		return st.isDir()
	default:
		return !st.isReg() && !st.isDir()
	}
}

// Fsyncdir syncs the backing directory (new names survive a crash).
func (h *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	return toErrno(unix.Fsync(h.fd))
}

// Releasedir closes the backing directory.
func (h *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	unix.Close(h.fd)
}

// rawDirent is one linux_dirent64.
type rawDirent struct {
	ino  uint64
	typ  uint8
	name string
}

// readDirents reads every entry of the directory fd from its start.
func readDirents(fd int) ([]rawDirent, error) {
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return nil, err
	}
	var out []rawDirent
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return out, nil
		}
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				break
			}
			name := b[19:reclen]
			for i, c := range name {
				if c == 0 {
					name = name[:i]
					break
				}
			}
			out = append(out, rawDirent{ino: binary.NativeEndian.Uint64(b[0:8]), typ: b[18], name: string(name)})
			b = b[reclen:]
		}
	}
}

func (h *dirHandle) load() error {
	raw, err := readDirents(h.fd)
	if err != nil {
		return err
	}
	fsys := h.n.fsys
	types := make(map[string]uint8, len(raw))
	for _, r := range raw {
		types[r.name] = r.typ
	}
	typeOf := func(s string) (uint32, bool) {
		t, ok := types[s]
		if ok && t == unix.DT_UNKNOWN {
			st, err := statAt(h.fd, s)
			return st.Mode & unix.S_IFMT, err == nil
		}
		return dtMode(t), ok
	}
	dev := fsys.rootDev
	if st, err := statFd(h.fd); err == nil {
		dev = st.Dev
	}
	entries := make([]fuse.DirEntry, 0, len(raw))
	backing := make([]backingEntry, 0, len(raw))
	for _, r := range raw {
		mode := dtMode(r.typ)
		if r.name == "." || r.name == ".." {
			entries = append(entries, fuse.DirEntry{Name: r.name, Mode: unix.S_IFDIR, Ino: fsys.inoOf(dev, r.ino)})
			backing = append(backing, backingEntry{})
			continue
		}
		if r.typ == unix.DT_UNKNOWN {
			st, err := statAt(h.fd, r.name)
			if err != nil {
				continue
			}
			mode = st.Mode & unix.S_IFMT
		}
		name, k, hidden := entryName(r.name, mode == unix.S_IFREG, mode == unix.S_IFDIR, typeOf,
			func(base string) (string, bool) { return fsys.readLongName(h.fd, base) })
		if hidden {
			if plain, gz := gzMountName(r.name); gz && mode == unix.S_IFREG && showsAsItself(plain, typeOf) {
				fsys.logClash(h.n.dirName(), plain)
			}
			continue
		}
		entries = append(entries, fuse.DirEntry{Name: name, Mode: mode, Ino: fsys.inoOf(dev, r.ino)})
		backing = append(backing, backingEntry{r.name, k})
	}
	for i := range entries {
		entries[i].Off = uint64(i + 1)
	}
	h.entries, h.backing, h.loaded = entries, backing, true
	return nil
}

// dtMode converts a dirent type to the S_IFMT bits.
func dtMode(t uint8) uint32 {
	switch t {
	case unix.DT_DIR:
		return unix.S_IFDIR
	case unix.DT_REG:
		return unix.S_IFREG
	case unix.DT_LNK:
		return unix.S_IFLNK
	case unix.DT_FIFO:
		return unix.S_IFIFO
	case unix.DT_SOCK:
		return unix.S_IFSOCK
	case unix.DT_CHR:
		return unix.S_IFCHR
	case unix.DT_BLK:
		return unix.S_IFBLK
	}
	return 0
}
