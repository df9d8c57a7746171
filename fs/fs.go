package fs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"

	"github.com/gzfs/gzfs/blockfile"
)

// DefaultFlushInterval is how long written data may stay in memory only when
// Options.FlushInterval is 0.
const DefaultFlushInterval = 3 * time.Second

// lockWait is how long an open waits for a file whose lock another
// process or machine holds (it releases it a moment after its close)
// before EAGAIN.
const lockWait = 500 * time.Millisecond

// DefaultIdleTimeout is how long the engine of a file stays open after its
// last handle is released when Options.IdleTimeout is 0.
const DefaultIdleTimeout = 2 * time.Second

// Options configure a gzfs file system.
type Options struct {
	Level          int           // deflate level for new blocks (0: blockfile default)
	BlockSize      int           // block size of new files (0: blockfile default)
	CacheBytes     int64         // shared cache of inflated blocks (0: 64 MiB)
	ReadOnly       bool          // refuse every change
	ConvertOnWrite bool          // a write open of a plain gzip file converts it to BGZF first
	FlushInterval  time.Duration // tail flush timer (0: DefaultFlushInterval, <0: off)
	IdleTimeout    time.Duration // how long a released file stays open, idle (0: DefaultIdleTimeout, <0: off)
	Logger         *slog.Logger  // nil: slog.Default()
}

// FS is one mounted backing tree: the root directory descriptor, the engine
// resources shared by all files, and the table of open files.
type FS struct {
	backing string
	rootFd  int
	rootDev uint64
	rootIno uint64
	opts    Options
	log     *slog.Logger
	store   *blockfile.Store
	cache   *blockfile.Cache
	files   openTable
	foreign foreignTable
	sizes   sizeCache
	dirs    dirFds
	clashes sync.Map // backing path -> struct{}: clashes already logged
	// The open file's flags of each write request in flight, by the
	// request's cancel channel (writeflags.go).
	writeFlags sync.Map
	convertMu  sync.Mutex // one convert=on-write conversion at a time
	isRoot     bool       // the daemon runs as root: new entries get the caller's owner
	euid       int        // the daemon's effective user ID
	egid       int        // and group ID
	nameMax    int        // NAME_MAX of the backing filesystem: the longest mount name
	tmpStore   string     // a temporary store directory to remove at Close
}

// New opens the backing directory and the shared engine resources.
func New(backing string, opts Options) (*FS, error) {
	abs, err := filepath.Abs(backing)
	if err != nil {
		return nil, fmt.Errorf("backing directory: %w", err)
	}
	fd, err := unix.Open(abs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("backing directory %s: %w", abs, err)
	}
	st, err := statFd(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("backing directory %s: %w", abs, err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CacheBytes == 0 {
		opts.CacheBytes = 64 << 20
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	fsys := &FS{
		backing: abs,
		rootFd:  fd,
		rootDev: st.Dev,
		rootIno: st.Ino,
		opts:    opts,
		log:     opts.Logger,
		cache:   blockfile.NewCache(opts.CacheBytes),
		isRoot:  os.Geteuid() == 0,
		euid:    os.Geteuid(),
		egid:    os.Getegid(),
		nameMax: backingNameMax(fd),
	}
	store, err := blockfile.OpenStore(filepath.Join(abs, blockfile.StoreDirName))
	if err != nil && opts.ReadOnly {
		// A read-only backing tree without a store: indexes are rebuilt
		// into a private temporary store, removed at Close.
		fsys.log.Warn("no sidecar store in the backing directory; using a temporary one", "err", err)
		if fsys.tmpStore, err = os.MkdirTemp("", "gzfs-store-"); err == nil {
			store, err = blockfile.OpenStore(fsys.tmpStore)
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, err // OpenStore names the store
	}
	fsys.store = store
	idle := opts.IdleTimeout
	if idle == 0 {
		idle = DefaultIdleTimeout
	}
	fsys.files.init(fsys, max(idle, 0))
	fsys.foreign.init(fsys)
	fsys.sizes.init(1 << 16)
	fsys.dirs.init()
	return fsys, nil
}

// RootStableAttr is the identity of the root directory, for
// fusefs.Options.RootStableAttr: its st_ino is the backing directory's, as
// readdir of its parent reports (without it the root stats as inode 0).
func (fsys *FS) RootStableAttr() *fusefs.StableAttr {
	a := fusefs.StableAttr{Mode: unix.S_IFDIR, Ino: fsys.inoOf(fsys.rootDev, fsys.rootIno)}
	return &a
}

// Root returns the root node to mount.
func (fsys *FS) Root() fusefs.InodeEmbedder {
	return &node{fsys: fsys, kind: kindDir}
}

// Backing returns the absolute path of the backing directory.
func (fsys *FS) Backing() string { return fsys.backing }

// FlushAll writes the dirty data of every open file to the backing files.
func (fsys *FS) FlushAll() error { return fsys.files.flushAll() }

// Close flushes and closes every file still open (after the unmount) and the
// backing directory.
func (fsys *FS) Close() error {
	err := fsys.files.closeAll()
	fsys.foreign.closeAll()
	fsys.dirs.close()
	if cerr := unix.Close(fsys.rootFd); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if fsys.tmpStore != "" {
		os.RemoveAll(fsys.tmpStore)
	}
	return err
}

// engineOptions returns the blockfile options for one file.
func (fsys *FS) engineOptions(readOnly bool) blockfile.Options {
	fi := fsys.opts.FlushInterval
	if fi < 0 {
		fi = 0
	}
	return blockfile.Options{
		Level:         fsys.opts.Level,
		BlockSize:     fsys.opts.BlockSize,
		Cache:         fsys.cache,
		Store:         fsys.store,
		ReadOnly:      readOnly || fsys.opts.ReadOnly,
		FlushInterval: fi,
		LockWait:      lockWait,
		// Readers never wait for another machine's writer: they read
		// without the lock (blockfile.File.ReadAt says what they get).
		ReadWhileLocked: true,
		Logger:          fsys.log,
	}
}

// inoOf maps a backing (dev, ino) to the mount's inode number, as go-fuse's
// loopback does: the inode number itself on the backing root's device.
func (fsys *FS) inoOf(dev, ino uint64) uint64 {
	swapped := (dev << 32) | (dev >> 32)
	rootSwapped := (fsys.rootDev << 32) | (fsys.rootDev >> 32)
	return (swapped ^ rootSwapped) ^ ino
}

// fileKey identifies a backing file for the open-file table and the size
// cache: the mount's inode number and the node generation (the birth time),
// since the backing filesystem reuses inode numbers at once.
type fileKey struct {
	ino, gen uint64
}

// keyOf is the fileKey of a backing entry.
func (fsys *FS) keyOf(st *stat) fileKey { return fileKey{fsys.inoOf(st.Dev, st.Ino), st.gen()} }

// key is the fileKey of a node.
func (n *node) key() fileKey { a := n.StableAttr(); return fileKey{a.Ino, a.Gen} }

// stableAttr is the identity of the node for a backing entry.
func (fsys *FS) stableAttr(st *stat) fusefs.StableAttr {
	return fusefs.StableAttr{Mode: st.Mode & unix.S_IFMT, Ino: fsys.inoOf(st.Dev, st.Ino), Gen: st.gen()}
}

// logClash logs a name clash once per backing path.
func (fsys *FS) logClash(dir, name string) {
	if _, loaded := fsys.clashes.LoadOrStore(dir+"/"+name, struct{}{}); !loaded {
		fsys.log.Warn("name clash: the plain file is shown, the .gz file is hidden (rename one of them in the backing directory)",
			"dir", dir, "plain", name, "hidden", name+gzSuffix)
	}
}
