package fs

import (
	"sync"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
)

// Every operation on an entry works relative to an O_PATH descriptor of its
// backing directory, opened by walking the directory's path from BACKING
// with openat2 (RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS). A cold stat of a file
// was an openat2 of its directory, two statx and a close; the walk grows
// with the depth of the directory. dirFds keeps the descriptors of recently
// used directories, so that a run of operations in one directory (ls -l,
// find, git status, tar x, a build) walks its path once.
//
// A descriptor follows its directory, not its path: a rename through the
// mount moves both the node and what its descriptor refers to, so it stays
// right. A change made behind the mount's back (another program or machine
// renaming or replacing a directory of the backing tree) is not seen
// through a cached descriptor; so a descriptor is reused only for
// dirFdTTL after its walk started at BACKING (one opened from a cached
// ancestor is as old as that one), the kernel's own entry timeout, within
// which the kernel shows its cached names anyway, and expired descriptors
// are closed within another dirFdTTL even when nothing else happens (a
// cached descriptor keeps a removed directory, or a file system mounted
// below BACKING, in use). A node that a lookup or mkdir (re)creates gets a
// fresh descriptor (a directory removed and made again may come back with
// the same inode number, hence the same node), and rmdir or a rename over
// a directory drops the descriptor of the removed one. An open that runs
// out of descriptors sheds the unused ones (relieveFDs).

// dirFdTTL is how long a cached directory descriptor is reused: the mount's
// entry and attribute timeout.
const dirFdTTL = time.Second

// maxDirFds is the most directory descriptors a mount caches, when the
// descriptor limit allows.
const maxDirFds = 64

// dirFdLimit is how many directory descriptors a mount caches: maxDirFds,
// or fewer so that they hold at most a sixteenth of the descriptor limit.
func dirFdLimit() int {
	return int(max(1, min(uint64(maxDirFds), fdLimit()/16)))
}

// dirFds caches O_PATH descriptors of backing directories by node.
type dirFds struct {
	mu     sync.Mutex
	m      map[*fusefs.Inode]*dirFd
	limit  int              // most entries
	now    func() time.Time // time.Now; tests replace it
	sweep  *time.Timer      // pending drop of expired entries; nil when none is due
	closed bool             // FS.Close shed the cache: nothing more is cached
}

// dirFd is one cached descriptor. refs counts its users plus one while it
// is in the cache; the last to let go closes fd. opened is when the walk
// it came from started at BACKING: a descriptor opened from a cached
// ancestor's is as old as that one, so that no path is trusted for longer
// than dirFdTTL however deep the walk.
type dirFd struct {
	fd     int
	opened time.Time
	refs   int
}

func (c *dirFds) init() {
	c.m = make(map[*fusefs.Inode]*dirFd)
	c.limit = dirFdLimit()
	c.now = time.Now
}

// get returns the cached descriptor of in, if one younger than dirFdTTL is
// there, with the function that releases it and when its walk started.
func (c *dirFds) get(in *fusefs.Inode) (int, func(), time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[in]
	if e == nil {
		return -1, nil, time.Time{}, false
	}
	if c.now().Sub(e.opened) >= dirFdTTL {
		c.dropLocked(in, e)
		return -1, nil, time.Time{}, false
	}
	e.refs++
	return e.fd, func() { c.release(e) }, e.opened, true
}

// put caches fd, just opened for in by a walk that started at BACKING at
// opened, and returns the function that releases the caller's use of it.
// A full cache first drops its expired entries and, if still full, its
// oldest one. An entry of in that is newer stays (a lookup or mkdir may
// have replaced it while this walk ran); so does everything once the cache
// is closed: fd is then only the caller's.
func (c *dirFds) put(in *fusefs.Inode, fd int, opened time.Time) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[in]; c.closed || old != nil && old.opened.After(opened) {
		return func() { unix.Close(fd) }
	} else if old != nil {
		c.dropLocked(in, old)
	}
	now := c.now()
	if len(c.m) >= c.limit {
		var oldest *fusefs.Inode
		for k, e := range c.m {
			if now.Sub(e.opened) >= dirFdTTL {
				c.dropLocked(k, e)
			} else if oldest == nil || e.opened.Before(c.m[oldest].opened) {
				oldest = k
			}
		}
		if len(c.m) >= c.limit && oldest != nil {
			c.dropLocked(oldest, c.m[oldest])
		}
	}
	e := &dirFd{fd: fd, opened: opened, refs: 2}
	c.m[in] = e
	if c.sweep == nil {
		// Expired entries are dropped soon even when nothing else comes:
		// a cached descriptor keeps a removed directory, and any file
		// system mounted below BACKING, in use.
		c.sweep = time.AfterFunc(dirFdTTL, c.dropExpired)
	}
	return func() { c.release(e) }
}

// dropExpired drops the entries older than dirFdTTL, and comes back while
// some remain.
func (c *dirFds) dropExpired() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for k, e := range c.m {
		if now.Sub(e.opened) >= dirFdTTL {
			c.dropLocked(k, e)
		}
	}
	c.sweep = nil
	if len(c.m) > 0 {
		c.sweep = time.AfterFunc(dirFdTTL, c.dropExpired)
	}
}

// forget drops the descriptor of in, if cached: in was removed, or a lookup
// found it anew.
func (c *dirFds) forget(in *fusefs.Inode) {
	c.mu.Lock()
	if e := c.m[in]; e != nil {
		c.dropLocked(in, e)
	}
	c.mu.Unlock()
}

// shed drops every cached descriptor and reports how many were closed at
// once (those no operation was using).
func (c *dirFds) shed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shedLocked()
}

// close sheds the cache for good (FS.Close): a walk still under way keeps
// its descriptor to itself.
func (c *dirFds) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.sweep != nil {
		c.sweep.Stop()
		c.sweep = nil
	}
	c.shedLocked()
}

func (c *dirFds) shedLocked() int {
	n := 0
	for k, e := range c.m {
		if e.refs == 1 {
			n++
		}
		c.dropLocked(k, e)
	}
	return n
}

func (c *dirFds) dropLocked(in *fusefs.Inode, e *dirFd) {
	delete(c.m, in)
	c.releaseLocked(e)
}

func (c *dirFds) release(e *dirFd) {
	c.mu.Lock()
	c.releaseLocked(e)
	c.mu.Unlock()
}

func (c *dirFds) releaseLocked(e *dirFd) {
	e.refs--
	if e.refs == 0 {
		unix.Close(e.fd)
	}
}

// openDir returns an O_PATH descriptor of the backing directory of the
// directory node in, and the function the caller calls when finished with
// it: the cached one, else one opened from the nearest ancestor whose
// descriptor is cached (or from BACKING) and cached in turn.
func (fsys *FS) openDir(in *fusefs.Inode) (fd int, done func(), err error) {
	if in.IsRoot() {
		return fsys.rootFd, noop, nil
	}
	if fd, done, _, ok := fsys.dirs.get(in); ok {
		return fd, done, nil
	}
	var rev []string
	base, baseDone, opened := fsys.rootFd, noop, fsys.dirs.now()
	for cur := in; !cur.IsRoot(); {
		name, parent := cur.Parent()
		if parent == nil {
			return -1, noop, unix.ENOENT
		}
		rev = append(rev, name)
		cur = parent
		if cur.IsRoot() {
			break
		}
		if fd, done, born, ok := fsys.dirs.get(cur); ok {
			base, baseDone, opened = fd, done, born
			break
		}
	}
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	fd, err = openBeneath(base, rev, unix.O_PATH|unix.O_DIRECTORY)
	baseDone()
	if err != nil {
		return -1, noop, err
	}
	return fd, fsys.dirs.put(in, fd, opened), nil
}
