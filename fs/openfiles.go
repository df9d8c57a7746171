package fs

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gzfs/gzfs/blockfile"
)

// openFile is one backing inode opened through the engine, shared by every
// handle (and every hardlink) of that inode.
type openFile struct {
	key        fileKey // the node's inode number and generation
	backingIno uint64  // for Store.Forget
	name       string  // backing path, for messages
	eng        *blockfile.File
	fd         int  // second descriptor of the backing file: fstat, fchmod, fchown, futimens
	readOnly   bool // the engine cannot write (read-only backing file or mount)

	refs    int           // guarded by openTable.mu
	closing bool          // guarded by openTable.mu
	ready   chan struct{} // closed once eng (or err) is set
	done    chan struct{} // closed once closed and out of the table
	err     error         // the open failed

	forget    atomic.Bool  // the last link is gone: forget the sidecars after Close
	lastWrite atomic.Int64 // unix nanoseconds of the last change through the mount
}

// touch records a change for st_mtime until the engine writes the backing file.
func (of *openFile) touch() { of.lastWrite.Store(time.Now().UnixNano()) }

// stamp is the state of a backing file when its last handle was released:
// if it is unchanged at the next open, the kernel page cache is kept.
type stamp struct {
	size, mtime, ctime int64
}

func stampOf(st *stat) stamp {
	return stamp{st.Size, st.Mtim.Nano(), st.Ctim.Nano()}
}

// openTable holds the open engine instances, keyed by inode number.
type openTable struct {
	fsys   *FS
	mu     sync.Mutex
	m      map[fileKey]*openFile
	stamps map[fileKey]stamp
}

func (t *openTable) init(fsys *FS) {
	t.fsys = fsys
	t.m = make(map[fileKey]*openFile)
	t.stamps = make(map[fileKey]stamp)
}

// opener opens the backing file; it returns the descriptor and whether it
// is read-only.
type opener func() (fd int, readOnly bool, err error)

// get returns the open instance of key with a reference, or nil.
func (t *openTable) get(key fileKey) *openFile {
	t.mu.Lock()
	e := t.m[key]
	if e == nil || e.closing {
		t.mu.Unlock()
		return nil
	}
	e.refs++
	t.mu.Unlock()
	<-e.ready
	if e.err != nil {
		t.release(e)
		return nil
	}
	return e
}

// acquire returns the open instance of key with a new reference, opening it
// with open if nobody has it open. shared reports that it was already open.
func (t *openTable) acquire(key fileKey, name string, open opener) (of *openFile, shared bool, err error) {
	for {
		t.mu.Lock()
		e := t.m[key]
		if e != nil && e.closing {
			done := e.done
			t.mu.Unlock()
			<-done
			continue
		}
		if e != nil {
			e.refs++
			t.mu.Unlock()
			<-e.ready
			if e.err != nil {
				t.release(e)
				return nil, false, e.err
			}
			return e, true, nil
		}
		e = &openFile{key: key, name: name, refs: 1, fd: -1, ready: make(chan struct{}), done: make(chan struct{})}
		t.m[key] = e
		t.mu.Unlock()

		e.err = t.open(e, open)
		close(e.ready)
		if e.err != nil {
			t.release(e)
			return nil, false, e.err
		}
		return e, false, nil
	}
}

func (t *openTable) open(e *openFile, open opener) error {
	fd, ro, err := open()
	if err != nil {
		return err
	}
	st, err := statFd(fd)
	if err != nil {
		unix.Close(fd)
		return wrap("fstat", e.name, err)
	}
	if t.fsys.keyOf(&st) != e.key {
		// The name now holds another file (renamed over, or a reused inode
		// number): ESTALE makes the kernel look the name up again.
		unix.Close(fd)
		return syscall.ESTALE
	}
	e.backingIno = st.Ino
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		unix.Close(fd)
		return wrap("dup", e.name, err)
	}
	eng, err := blockfile.OpenFD(os.NewFile(uintptr(fd), e.name), e.name, t.fsys.engineOptions(ro))
	if err != nil {
		unix.Close(dup)
		return err
	}
	e.eng, e.fd, e.readOnly = eng, dup, ro
	return nil
}

// release drops a reference; the last one closes the engine (flushing it),
// records the stamp and forgets the sidecars of a file without links.
func (t *openTable) release(e *openFile) error {
	t.mu.Lock()
	e.refs--
	if e.refs > 0 || e.closing {
		t.mu.Unlock()
		return nil
	}
	e.closing = true
	t.mu.Unlock()
	err := t.closeEntry(e)
	t.mu.Lock()
	if t.m[e.key] == e {
		delete(t.m, e.key)
	}
	t.mu.Unlock()
	close(e.done)
	return err
}

func (t *openTable) closeEntry(e *openFile) error {
	if e.err != nil || e.eng == nil {
		return nil
	}
	size := e.eng.Size()
	err := e.eng.Close()
	if err != nil {
		err = wrap("close", e.name, err)
	}
	// A change that wrote nothing (a truncate to the same size) still
	// moved st_mtime: keep it on the backing file.
	if lw := e.lastWrite.Load(); lw > 0 && err == nil {
		if st, serr := statFd(e.fd); serr == nil && st.Mtim.Nano() < lw {
			ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(lw)}
			if terr := futimens(e.fd, &ts); terr != nil {
				t.fsys.log.Warn("setting mtime at close", "file", e.name, "err", terr)
			}
		}
	}
	if st, serr := statFd(e.fd); serr == nil && err == nil {
		t.mu.Lock()
		if len(t.stamps) > 1<<16 {
			clear(t.stamps)
		}
		t.stamps[e.key] = stampOf(&st)
		t.mu.Unlock()
		// The next stat needs no engine open.
		t.fsys.sizes.put(e.key, &st, size, false)
	}
	unix.Close(e.fd)
	if e.forget.Load() {
		t.fsys.forgetIno(e.backingIno)
	}
	return err
}

// unchanged reports whether the backing file is as it was at the last
// release (so cached pages of the kernel are still right).
func (t *openTable) unchanged(key fileKey, st *stat) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.stamps[key]
	return ok && s == stampOf(st)
}

// dropStamp forgets the stamp of key (its content changed outside a handle).
func (t *openTable) dropStamp(key fileKey) {
	t.mu.Lock()
	delete(t.stamps, key)
	t.mu.Unlock()
}

// snapshot returns the open entries with a reference each.
func (t *openTable) snapshot() []*openFile {
	t.mu.Lock()
	var list []*openFile
	for _, e := range t.m {
		if !e.closing {
			e.refs++
			list = append(list, e)
		}
	}
	t.mu.Unlock()
	return list
}

func (t *openTable) flushAll() error {
	var errs []error
	for _, e := range t.snapshot() {
		<-e.ready
		if e.err == nil {
			if err := e.eng.Flush(); err != nil {
				errs = append(errs, wrap("flush", e.name, err))
			}
		}
		if err := t.release(e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// closeAll closes every file still open: after the unmount no release will
// come for them.
func (t *openTable) closeAll() error {
	t.mu.Lock()
	var list []*openFile
	for _, e := range t.m {
		if !e.closing {
			e.closing = true
			list = append(list, e)
		}
	}
	t.mu.Unlock()
	var errs []error
	for _, e := range list {
		<-e.ready
		if err := t.closeEntry(e); err != nil {
			errs = append(errs, err)
		}
		t.mu.Lock()
		if t.m[e.key] == e {
			delete(t.m, e.key)
		}
		t.mu.Unlock()
		close(e.done)
	}
	return errors.Join(errs...)
}
