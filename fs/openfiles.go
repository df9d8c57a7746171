package fs

import (
	"errors"
	"log/slog"
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
	parking chan struct{} // guarded by openTable.mu: non-nil while going idle or being resumed, closed when done
	idle    *time.Timer   // guarded by openTable.mu: set while idle (no handle; closed when it fires)
	ready   chan struct{} // closed once eng (or err) is set
	done    chan struct{} // closed once closed and out of the table
	err     error         // the open failed

	log       *slog.Logger
	pagesGen  atomic.Uint64 // the engine's Generation when the kernel's pages of the file were last known right
	lockMu    sync.Mutex    // orders taking and letting go of the engine's lock with the writers count
	writers   atomic.Int32  // handles open for writing (changed under lockMu): while there are none, the engine holds no lock
	forget    atomic.Bool   // the last link is gone: forget the sidecars after Close
	stale     atomic.Bool   // changed behind this engine: closing it records no stamp
	lastWrite atomic.Int64  // unix nanoseconds of the last change through the mount
}

// changeTime is the time to record (touch) for a change about to be made:
// the kernel's coarse clock, the one it stamps files with (multigrain
// timestamps are never earlier), read before the engine writes anything.
// The backing file's mtime after the engine writes it is then never earlier
// than what stat showed meanwhile, so st_mtime does not move backwards when
// the file is closed.
func changeTime() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &ts) != nil {
		return time.Now().UnixNano()
	}
	return ts.Nano()
}

// touch records a change made at t (changeTime) for st_mtime until the
// engine writes the backing file; a later change's time is kept.
func (of *openFile) touch(t int64) {
	for {
		old := of.lastWrite.Load()
		if old >= t || of.lastWrite.CompareAndSwap(old, t) {
			return
		}
	}
}

// truncate sets the size; a truncate to the size the file has already
// writes nothing, so it sets st_mtime (and st_ctime) on the backing file
// itself, as ext4 does.
func (of *openFile) truncate(size int64) error {
	if of.eng.Size() == size {
		if err := of.eng.Lock(); err != nil { // a change like any other: the writer's
			return err
		}
		ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_NOW}}
		return futimens(of.fd, &ts)
	}
	t := changeTime()
	if err := of.eng.Truncate(size); err != nil {
		return err
	}
	of.touch(t)
	return nil
}

// lockForWrite takes the engine's lock for a handle that writes (another
// machine's writer may hold it: EAGAIN after the lock wait) and counts the
// handle.
func (of *openFile) lockForWrite() error {
	of.lockMu.Lock()
	defer of.lockMu.Unlock()
	if err := of.eng.Lock(); err != nil {
		return err
	}
	of.writers.Add(1)
	return nil
}

// releaseWriter uncounts a handle that wrote and lets go of the lock if it
// was the last one.
func (of *openFile) releaseWriter() {
	of.lockMu.Lock()
	of.writers.Add(-1)
	of.lockMu.Unlock()
	of.unlockIfReading()
}

// unlockIfReading lets go of the engine's lock while no handle writes, so
// that another machine's gzfs (or another process) may write the file while
// this mount reads it: the engine then reads without the lock and follows
// that writer (see blockfile.Options.ReadWhileLocked).
func (of *openFile) unlockIfReading() {
	of.lockMu.Lock()
	defer of.lockMu.Unlock()
	if of.writers.Load() > 0 {
		return
	}
	if err := of.eng.Idle(); err != nil && !errors.Is(err, os.ErrClosed) {
		// Still locked (the flush failed): the error shows at the next
		// write or close.
		of.log.Warn("letting go of a file's lock", "file", of.name, "err", err)
	}
}

// stamp is the state of a backing file when its last handle was released:
// if it is unchanged at the next open, the kernel page cache is kept.
type stamp struct {
	size, mtime, ctime int64
}

func stampOf(st *stat) stamp {
	return stamp{st.Size, st.Mtim.Nano(), st.Ctim.Nano()}
}

// openTable holds the open engine instances, keyed by inode number and
// birth. An instance whose last handle is released stays idle for a while
// (flushed, its lock released, its index mapped): opened again unchanged,
// it costs a lookup.
type openTable struct {
	fsys    *FS
	mu      sync.Mutex
	m       map[fileKey]*openFile
	stamps  map[fileKey]stamp
	idleFor time.Duration // how long an instance stays idle (0: closed at once)
	idleMax int           // at most this many idle instances
	idleNow int           // guarded by mu
}

func (t *openTable) init(fsys *FS, idleFor time.Duration) {
	t.fsys = fsys
	t.m = make(map[fileKey]*openFile)
	t.stamps = make(map[fileKey]stamp)
	t.idleFor, t.idleMax = idleFor, idleLimit()
	registerTable(t)
}

// opener opens the backing file; it returns the descriptor and whether it
// is read-only.
type opener func() (fd int, readOnly bool, err error)

// get returns the open instance of key with a reference, or nil.
func (t *openTable) get(key fileKey) *openFile {
	t.mu.Lock()
	e := t.m[key]
	if e == nil || e.closing || e.idle != nil || e.parking != nil {
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
		if e != nil && e.parking != nil {
			parked := e.parking
			t.mu.Unlock()
			<-parked
			continue
		}
		if e != nil && e.idle != nil {
			e.idle.Stop()
			e.idle = nil
			t.idleNow--
			e.refs = 1
			// Others wait (acquire) or pass it by (get, snapshot) until
			// Resume says whether this engine can be used: one that fails
			// is closed, and a reference taken meanwhile would hold a
			// closed engine and descriptor.
			resuming := make(chan struct{})
			e.parking = resuming
			t.mu.Unlock()
			ok := e.eng.Resume()
			t.mu.Lock()
			e.parking = nil
			close(resuming)
			unmounting := e.closing // closeAll took it meanwhile and closes it
			t.mu.Unlock()
			switch {
			case ok:
				return e, true, nil // unchanged since its last release
			case unmounting:
				return nil, false, os.ErrClosed
			}
			t.closeNow(e) // changed behind our back: open it anew
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
		e = &openFile{key: key, name: name, refs: 1, fd: -1, ready: make(chan struct{}), done: make(chan struct{}), log: t.fsys.log}
		t.m[key] = e
		t.mu.Unlock()

		for {
			if e.err = t.open(e, open); !reliefFor(e.err) {
				break
			}
		}
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
	if e.err == nil && e.eng != nil && !e.forget.Load() && t.idleFor > 0 && t.idleNow < t.idleMax {
		return t.park(e) // unlocks t.mu
	}
	e.closing = true
	t.mu.Unlock()
	return t.finish(e)
}

// park makes the released entry e idle: flushed and unlocked, closed when
// idleFor passes without a new handle. Called with t.mu held; unlocks it.
func (t *openTable) park(e *openFile) error {
	parked := make(chan struct{})
	e.parking = parked
	t.idleNow++
	t.mu.Unlock()
	err := e.eng.Idle()
	if err == nil && e.eng.InSync() && e.pagesRight() {
		t.recordClose(e, e.eng.Size())
	} else {
		t.dropStamp(e.key) // another writer changed it: the kernel's pages are not ours
	}
	notIdle := errors.Is(err, blockfile.ErrNotIdle) // flushed, nothing lost: closed instead
	if notIdle {
		t.fsys.log.Warn("closing instead of keeping idle", "file", e.name, "err", err)
		err = nil
	}
	t.mu.Lock()
	e.parking = nil
	close(parked)
	if e.closing { // closeAll (unmount) took it meanwhile
		t.idleNow--
		t.mu.Unlock()
		return err
	}
	if err != nil || notIdle || e.forget.Load() { // forget: its last name went while it parked
		t.idleNow--
		e.closing = true
		t.mu.Unlock()
		return errors.Join(wrap("close", e.name, err), t.finish(e))
	}
	e.idle = time.AfterFunc(t.idleFor, func() { t.expire(e) })
	t.mu.Unlock()
	return nil
}

// expire closes e if it is still idle and reports whether it did.
func (t *openTable) expire(e *openFile) bool {
	t.mu.Lock()
	if e.idle == nil || e.closing || e.refs > 0 {
		t.mu.Unlock()
		return false
	}
	e.idle.Stop()
	e.idle = nil
	t.idleNow--
	e.closing = true
	t.mu.Unlock()
	// Take the file back (lock, unchanged) so that closing may finish its
	// writes (a fast-compressed last block gets the configured level); a
	// file changed or locked elsewhere is closed without writing.
	if !e.eng.Resume() {
		e.stale.Store(true)
	}
	if err := t.finish(e); err != nil {
		t.fsys.log.Warn("closing an idle file", "file", e.name, "err", err)
	}
	return true
}

// shedIdle closes every idle instance at once (the process is out of
// descriptors) and returns how many it closed.
func (t *openTable) shedIdle() int {
	t.mu.Lock()
	var idle []*openFile
	for _, e := range t.m {
		if e.idle != nil && !e.closing {
			idle = append(idle, e)
		}
	}
	t.mu.Unlock()
	n := 0
	for _, e := range idle {
		if t.expire(e) {
			n++
		}
	}
	return n
}

// evict closes the idle instance of key at once, if there is one (its last
// link is gone).
// markForget marks the entry of key, whatever its state (open, going idle,
// idle, being resumed, closing), to forget its sidecars when it closes, and
// reports whether there was one.
func (t *openTable) markForget(key fileKey) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.m[key]
	if e != nil {
		e.forget.Store(true)
	}
	return e != nil
}

func (t *openTable) evict(key fileKey) {
	t.mu.Lock()
	e := t.m[key]
	t.mu.Unlock()
	if e != nil {
		t.expire(e)
	}
}

// closeNow closes an entry taken from idle that cannot be resumed: the
// backing file changed behind it (or another process holds it), so its
// stamp is not this mount's any more.
func (t *openTable) closeNow(e *openFile) {
	t.mu.Lock()
	e.refs = 0
	e.closing = true
	t.mu.Unlock()
	e.stale.Store(true)
	t.dropStamp(e.key)
	if err := t.finish(e); err != nil {
		t.fsys.log.Warn("closing a file changed while idle", "file", e.name, "err", err)
	}
}

// finish closes a closing entry and takes it out of the table.
func (t *openTable) finish(e *openFile) error {
	err := t.closeEntry(e)
	t.mu.Lock()
	if t.m[e.key] == e {
		delete(t.m, e.key)
	}
	t.mu.Unlock()
	close(e.done)
	return err
}

// pagesRight reports whether the kernel's pages of e's file can be those
// of the engine's view: the engine did not load the file anew (another
// process changed it) since the last open told the kernel so. Otherwise a
// close must not vouch for them: the next engine would start a new count
// and keep them.
func (e *openFile) pagesRight() bool {
	return e.eng.Generation() == e.pagesGen.Load()
}

func (t *openTable) closeEntry(e *openFile) error {
	if e.err != nil || e.eng == nil {
		return nil
	}
	size := e.eng.Size()
	inSync := e.eng.InSync()
	err := e.eng.Close()
	if err != nil {
		err = wrap("close", e.name, err)
	} else if !e.stale.Load() && inSync && e.pagesRight() {
		t.recordClose(e, size)
	}
	if e.forget.Load() {
		// While e.fd still pins the inode: once it is closed the number
		// may be reused at once, and the sidecars be a new file's.
		t.fsys.forgetIno(e.backingIno)
	}
	unix.Close(e.fd)
	return err
}

// recordClose runs when the last handle of e is gone and its data is in the
// backing file: the backing file's stamp and logical size are remembered
// (the kernel's cached pages stay valid while the stamp holds; the next
// stat needs no engine).
func (t *openTable) recordClose(e *openFile, size int64) {
	e.lastWrite.Store(0) // written: the backing file's mtime says it now
	st, err := statFd(e.fd)
	if err != nil {
		return
	}
	t.mu.Lock()
	if len(t.stamps) > 1<<16 {
		clear(t.stamps)
	}
	t.stamps[e.key] = stampOf(&st)
	t.mu.Unlock()
	t.fsys.sizes.put(e.key, &st, size, false)
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
		if !e.closing && e.idle == nil && e.parking == nil {
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
	unregisterTable(t)
	t.mu.Lock()
	var list, idle []*openFile
	for _, e := range t.m {
		if !e.closing {
			e.closing = true
			if e.idle != nil {
				e.idle.Stop()
				e.idle = nil
				t.idleNow--
				idle = append(idle, e)
			}
			list = append(list, e)
		}
	}
	t.mu.Unlock()
	for _, e := range idle {
		if !e.eng.Resume() { // as in expire: an idle engine writes only once taken back
			e.stale.Store(true)
		}
	}
	var errs []error
	for _, e := range list {
		<-e.ready
		t.mu.Lock()
		parked := e.parking
		t.mu.Unlock()
		if parked != nil {
			<-parked
		}
		if err := t.finish(e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
