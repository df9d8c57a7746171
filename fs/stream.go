package fs

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/gzfs/gzfs/blockfile"
	"github.com/gzfs/gzfs/gzindex"
)

// foreignHandle reads a foreign gzip file (gzip but not BGZF) through the
// shared blockfile.Foreign of its inode: through its checkpoint index when
// there is one (random access), else as a stream. It is read-only and
// opened with FOPEN_DIRECT_IO, since st_size (the ISIZE trailer) may be
// wrong for multi-member files or files over 4 GiB until the index is
// built.
type foreignHandle struct {
	fsys *FS
	e    *foreignEntry
	// direct: opened with FOPEN_DIRECT_IO, so a short reply is only a
	// short read. Through the page cache it would tell the kernel the
	// file ends there (it shrinks i_size), so a failing read fails whole.
	direct bool
}

// Read inflates the range [off, off+len(dest)).
func (h *foreignHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := h.e.x.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) && (n == 0 || !h.direct) {
		return nil, h.fsys.errno("read", h.e.name, err)
	}
	// With direct I/O, bytes before damage are returned as a short read;
	// the next read, which starts at the damage, fails.
	return fuse.ReadResultData(dest[:n]), 0
}

// Release drops the handle's reference.
func (h *foreignHandle) Release(ctx context.Context) syscall.Errno {
	h.fsys.foreign.release(h.e)
	return 0
}

// foreignEntry is the shared Foreign of one backing inode.
type foreignEntry struct {
	key  fileKey
	name string
	ino  uint64 // of the backing file, which names its checkpoint index
	x    *blockfile.Foreign
	refs int // handles plus a running index build; guarded by foreignTable.mu
	// sizeTold: an open through the page cache dropped the attributes the
	// kernel cached before the index knew the exact size (a stat then
	// gave the ISIZE trailer, and the kernel's reads stop at st_size).
	sizeTold atomic.Bool
	// forget: the file's last name is gone; the last release removes its
	// checkpoint index (a build still running writes it). Guarded by
	// foreignTable.mu.
	forget bool
}

// foreignTable shares one Foreign per backing inode between its handles
// and builds missing checkpoint indexes in the background, one at a time
// (a build reads the whole file once; reads go on meanwhile).
type foreignTable struct {
	fsys   *FS
	mu     sync.Mutex
	m      map[fileKey]*foreignEntry
	builds chan struct{}
	wg     sync.WaitGroup
}

func (t *foreignTable) init(fsys *FS) {
	t.fsys = fsys
	t.m = make(map[fileKey]*foreignEntry)
	t.builds = make(chan struct{}, 1)
}

// acquire returns the entry of key with a reference, opening it from fd
// (which it then owns; otherwise fd is closed). A new entry without an
// index starts its build.
func (t *foreignTable) acquire(key fileKey, name string, fd int) (*foreignEntry, error) {
	// The reference to an entry in the table is taken in the same critical
	// section that finds it: one found and referenced later could have
	// been released and closed in between.
	t.mu.Lock()
	e := t.m[key]
	if e != nil {
		e.refs++
		syscall.Close(fd)
	} else {
		t.mu.Unlock()
		st, err := statFd(fd)
		if err != nil {
			syscall.Close(fd)
			return nil, err
		}
		x, err := blockfile.OpenForeign(os.NewFile(uintptr(fd), name), name, t.fsys.store, t.fsys.log)
		if err != nil {
			return nil, err
		}
		e = &foreignEntry{key: key, name: name, ino: st.Ino, x: x}
		t.mu.Lock()
		if old := t.m[key]; old != nil { // opened meanwhile by another handle
			old.refs++
			t.mu.Unlock()
			e.x.Close()
			t.mu.Lock()
			e = old
		} else {
			t.m[key] = e
			e.refs++
		}
	}
	// A new entry without an index, or one whose file changed while open.
	build := e.x.NeedsIndex()
	if build {
		e.refs++
	}
	t.mu.Unlock()
	if build {
		t.wg.Add(1)
		go t.build(e)
	}
	return e, nil
}

// build makes the checkpoint index of e, then drops its reference.
func (t *foreignTable) build(e *foreignEntry) {
	defer t.wg.Done()
	defer t.release(e)
	t.builds <- struct{}{}
	defer func() { <-t.builds }()
	if err := e.x.BuildIndex(0, nil); err != nil && !errors.Is(err, gzindex.ErrStopped) && !errors.Is(err, os.ErrClosed) {
		t.fsys.log.Warn("building the checkpoint index of a gzip file", "file", e.name, "err", err)
		return
	}
	if e.x.Indexed() {
		t.fsys.sizes.drop(e.key) // the exact size is known now
		t.fsys.log.Info("checkpoint index built", "file", e.name, "stats", e.x.Stats())
	}
}

// get returns the open entry of key with a reference, or nil.
func (t *foreignTable) get(key fileKey) *foreignEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.m[key]
	if e != nil {
		e.refs++
	}
	return e
}

// release drops a reference; the last one closes the Foreign.
func (t *foreignTable) release(e *foreignEntry) {
	t.mu.Lock()
	e.refs--
	last := e.refs == 0
	if last && t.m[e.key] == e {
		delete(t.m, e.key)
	}
	forget := last && e.forget
	t.mu.Unlock()
	if last {
		if err := e.x.Close(); err != nil {
			t.fsys.log.Warn("closing a gzip file", "file", e.name, "err", err)
		}
	}
	if forget {
		t.fsys.forgetIno(e.ino)
	}
}

// forgetAtLastRelease marks the open entry of key, if any, to have its
// checkpoint index removed at its last release, and reports whether there
// was one.
func (t *foreignTable) forgetAtLastRelease(key fileKey) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.m[key]; e != nil {
		e.forget = true
		return true
	}
	return false
}

// closeAll stops the builds and closes every entry (after the unmount).
func (t *foreignTable) closeAll() {
	t.mu.Lock()
	list := make([]*foreignEntry, 0, len(t.m))
	for _, e := range t.m {
		list = append(list, e)
	}
	clear(t.m)
	t.mu.Unlock()
	for _, e := range list {
		e.x.Close() // stops a running build
	}
	t.wg.Wait()
}
