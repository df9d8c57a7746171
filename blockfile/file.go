package blockfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gzfs/gzfs/bgzf"
	"github.com/gzfs/gzfs/blockindex"
	"golang.org/x/sys/unix"
)

// File is one compressed file opened for random access. All methods are safe
// for concurrent use: reads run in parallel with each other; writes, truncates
// and flushes are serialized with them.
type File struct {
	name     string
	fd       backingFile
	fid      blockindex.FileID // backing file identity: sidecar names and checks
	id       uint64            // cache key of this File
	store    *Store
	opts     Options
	log      *slog.Logger
	cache    *Cache
	encoders *bgzf.EncoderPool
	workers  chan struct{} // bounds concurrent inflate/deflate jobs

	mu          sync.RWMutex
	idx         *blockindex.Index
	jnl         *journal    // opened on first in-place batch
	jnlUnsure   bool        // the journal was empty at open, perhaps not durably (see replayJournal)
	headers     io.ReaderAt // during an open of a small file, a copy of it (see readSmall); else nil
	size        int64       // logical size, dirty data included
	backing     int64       // end of the last data member in the backing file
	eof         bool        // the backing file ends with the BGZF EOF marker after backing
	blockSize   int64
	dirty       map[int64][]byte // blocks changed in memory, by block number
	pending     []*job           // full blocks being compressed for appending, in order
	state       string           // index state for Stats
	held        int64            // this File's share of heldBlocks
	promised    int64            // this File's share of promisedBytes
	appendBuf   []byte           // reused to gather members for one append write
	closed      bool
	bgErr       error             // error of a timer flush, reported by the next Flush/Sync/Close
	skipGZI     bool              // a rebuild walks the headers: the .gzi beside the file misplaced a block
	broken      error             // a journaled batch was not applied: every later call fails
	synced      int64             // backing bytes below this offset may be durable (fsynced): rewrites there fsync
	idleStamp   fileStamp         // the backing file at Idle; zero while not idle
	seen        fileStamp         // unlocked: the backing file state the index describes
	private     bool              // unlocked: the index was loaded since the lock was let go (the file changed since Idle, or another process held it at the open)
	shared      *blockindex.Index // unlocked after Idle: the sidecar's mapping, back in use once locked again
	onShared    uint8             // sharedIndex's answer: 0 not asked yet, 1 local, 2 shared
	indexSyncs  int               // fsyncs of the index made for other machines (publishIndex, markDirtyInPlace), for tests
	noSidecar   bool              // during a rebuild at open: the index file is known to be missing
	walkDamaged bool              // the last index rebuild met damaged or torn members
	reloaded    fileStamp         // the backing file when a block error last rebuilt the index
	reloadedAt  time.Time         // when (see reloadIndex)
	seenAt      time.Time         // unlocked: when seen was taken (see current)
	generation  atomic.Uint64     // counts the times the File loaded the file anew (another process changed it)
	timer       *time.Timer       // pending timer flush, when FlushInterval > 0
	fastTail    int64             // the last block, stored at fastLevel by an append; -1: none
	chunks      tailChunks        // deflate data of the fast tail block's leading bytes (flush.go)
	settling    bool              // this flush writes every block at the configured level (Close)

	unlocked    atomic.Bool  // no lock held (Idle, or opened while another process writes): nothing is written
	checkedAt   atomic.Int64 // unlocked: unix nanoseconds of the last look at the backing file
	flightMu    sync.Mutex
	flights     map[int64]*flight // blocks being inflated
	aheadMu     sync.Mutex
	streams     [readStreams]readStream // the readers read-ahead follows (under aheadMu, but for their atomics)
	streamClock int64                   // counts the reads matched to streams (aheadMu)
	// retiredServed is the last served mark of a stream whose place another
	// reader took (see reached).
	retiredServed atomic.Int64
	inFlight      sync.WaitGroup
}

// sharedWorkers bounds the compress and inflate jobs of all Files opened
// without Options.Workers, together: runtime.GOMAXPROCS at the first such
// open (the mount daemon raises GOMAXPROCS before it opens anything).
var sharedWorkers = sync.OnceValue(func() chan struct{} { return make(chan struct{}, runtime.GOMAXPROCS(0)) })

// backingFile is what the engine does with its backing and journal files:
// an *os.File, or in the power-loss test a recorder of every write.
type backingFile interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
	Sync() error
	Stat() (os.FileInfo, error)
	Fd() uintptr
	Close() error
	Name() string
}

// changeTracker is the engine's backing file, noting whether it changed
// since its last successful fsync and counting fsyncs: Sync then skips the
// fsync of data that a journaled batch of the same Sync has just made
// durable (the batch fsyncs the data before the journal is emptied). A new
// tracker counts as changed: the file may hold writes of a process that
// never fsynced them.
type changeTracker struct {
	backingFile
	changed atomic.Bool
	syncs   atomic.Uint64 // successful fsyncs
}

func newChangeTracker(f backingFile) *changeTracker {
	t := &changeTracker{backingFile: f}
	t.changed.Store(true)
	return t
}

func (t *changeTracker) WriteAt(p []byte, off int64) (int, error) {
	t.changed.Store(true)
	return t.backingFile.WriteAt(p, off)
}

func (t *changeTracker) Truncate(size int64) error {
	t.changed.Store(true)
	return t.backingFile.Truncate(size)
}

// Sync fsyncs the file. A write while it runs leaves the file changed.
func (t *changeTracker) Sync() error {
	t.changed.Store(false)
	if err := t.backingFile.Sync(); err != nil {
		t.changed.Store(true)
		return err
	}
	t.syncs.Add(1)
	return nil
}

// wrapFile gives the engine its view of an opened file (a variable for
// tests).
var wrapFile = func(f *os.File) backingFile { return f }

// maxDirtyBlocks bounds the blocks held in memory per File before a flush.
const maxDirtyBlocks = 64

// maxHeldBlocks bounds the dirty and pending blocks of all Files of the
// process together (about 30 MiB at the default block size): past it, a
// writer flushes its own blocks before going on.
const maxHeldBlocks = 512

// heldBlocks counts the dirty and pending blocks of all Files.
var heldBlocks atomic.Int64

// Open opens the backing file at path (read-write unless opts.ReadOnly).
// A pending journal is replayed and the index validated or rebuilt first.
// An empty file is a valid empty gzfs file.
func Open(path string, opts Options) (*File, error) {
	flag := os.O_RDWR
	if opts.ReadOnly {
		flag = os.O_RDONLY
	}
	fd, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	return openAt(fd, path, path, opts)
}

// Create creates (or truncates to empty) the backing file at path.
func Create(path string, perm os.FileMode, opts Options) (*File, error) {
	fd, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return nil, err
	}
	// An empty file is the EOF marker: a valid gzip stream from the start
	// (as the mount's create writes it).
	if _, err := fd.WriteAt(bgzf.EOFMember, 0); err != nil {
		fd.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return openAt(fd, path, path, opts)
}

// OpenFD makes a File of an already opened backing file (for the mount, which
// opens files relative to a directory fd). name is used in messages. The File
// owns fd from now on and closes it in Close. fd must be opened O_RDWR unless
// opts.ReadOnly. opts.Store must be set.
func OpenFD(fd *os.File, name string, opts Options) (*File, error) {
	return openAt(fd, name, "", opts)
}

func openAt(fd *os.File, name, path string, opts Options) (f *File, err error) {
	defer func() {
		if err != nil {
			fd.Close()
			err = fmt.Errorf("%s: %w", name, err)
		}
	}()
	if opts.Level == 0 {
		opts.Level = DefaultLevel
	}
	if opts.BlockSize == 0 {
		opts.BlockSize = DefaultBlockSize
	}
	if opts.BlockSize < MinBlockSize || opts.BlockSize > MaxBlockSize {
		return nil, fmt.Errorf("block size %d out of range %d..%d", opts.BlockSize, MinBlockSize, MaxBlockSize)
	}
	encoders, err := encoderPool(opts.Level)
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Cache == nil {
		opts.Cache = NewCache(8 << 20)
	}
	if opts.Store == nil {
		if path == "" {
			return nil, errors.New("OpenFD needs Options.Store")
		}
		if opts.Store, err = FindStore(path); err != nil {
			return nil, err
		}
	}
	st, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	f = &File{
		name: name, fd: newChangeTracker(wrapFile(fd)), fid: backingID(int(fd.Fd()), sys.Ino), id: nextFileID.Add(1),
		store: opts.Store, opts: opts, log: opts.Logger, cache: opts.Cache,
		encoders: encoders, workers: sharedWorkers(), dirty: make(map[int64][]byte), fastTail: -1, chunks: tailChunks{block: -1},
	}
	if opts.Workers > 0 {
		f.workers = make(chan struct{}, opts.Workers)
	}
	wait := opts.LockWait
	if opts.ReadWhileLocked {
		wait = 0 // a reader does not wait: it opens unlocked (a write waits in Lock)
	}
	if err := lockWait(int(fd.Fd()), f.lockHow(), wait); err != nil {
		if opts.ReadWhileLocked && err == unix.EWOULDBLOCK {
			if err := f.openUnlocked(); err != nil {
				return nil, err
			}
			return f, nil
		}
		return nil, fmt.Errorf("file is in use by another gzfs process: %w", err)
	}
	if err := f.recover(); err != nil {
		return nil, err
	}
	return f, nil
}

var (
	poolsMu sync.Mutex
	pools   = map[int]*bgzf.EncoderPool{}
)

// encoderPool returns the shared encoder pool of a gzfs level.
func encoderPool(level int) (*bgzf.EncoderPool, error) {
	poolsMu.Lock()
	defer poolsMu.Unlock()
	if p, ok := pools[level]; ok {
		return p, nil
	}
	if level < 1 || level > 9 {
		return nil, fmt.Errorf("compression level %d out of range 1..9", level)
	}
	p, err := bgzf.NewEncoderPool(level)
	if err != nil {
		return nil, err
	}
	pools[level] = p
	return p, nil
}

// Size returns the logical size in O(1) (an unlocked File first looks at
// the backing file, at most once a second: see refreshIfDue).
func (f *File) Size() int64 {
	if f.unlocked.Load() {
		f.refreshIfDue()
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.size
}

// StoredSize returns the size of the backing file in bytes (after the last flush).
func (f *File) StoredSize() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.physical()
}

// physical is the backing file size: the data members and the EOF marker.
func (f *File) physical() int64 {
	if f.eof {
		return f.backing + int64(len(bgzf.EOFMember))
	}
	return f.backing
}

// Name returns the name given at open, for messages.
func (f *File) Name() string { return f.name }

// Stats describes the layout of the file.
func (f *File) Stats() Stats {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return Stats{
		Size: f.size, StoredSize: f.physical(), BlockSize: int(f.blockSize),
		Blocks: f.idx.Len(), Uniform: f.idx.Uniform(), IndexState: f.state,
		Dirty: len(f.dirty) + len(f.pending),
	}
}

// ExportGZI writes the index in htslib's .gzi layout: a uint64 count, then
// (compressed offset, uncompressed offset) uint64 pairs for every block but
// the first, all little-endian. Dirty data is flushed first.
func (f *File) ExportGZI(w io.Writer) error {
	if !f.opts.ReadOnly {
		if err := f.Flush(); err != nil {
			return err
		}
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.idx.ExportGZI(w)
}

// Close flushes and releases the File. It closes the backing file.
func (f *File) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return os.ErrClosed
	}
	var err error
	if f.mayWrite() {
		err = f.flushLocked()
		if err == nil && f.fastTail >= 0 {
			// The file comes to rest: its last block gets the configured
			// level. Not for an unlocked File (mayWrite): the file may have
			// changed behind it (another process or machine); an idle File
			// never writes (Resume or Lock it first).
			//
			// The settle changes no byte of the file, only how its last
			// block is compressed: it keeps the backing file's times, which
			// are the mount's (make and rsync would otherwise see a file
			// changed seconds after its last write).
			var before unix.Stat_t
			statErr := unix.Fstat(int(f.fd.Fd()), &before)
			if err = f.settleTail(); err == nil {
				err = f.flushLocked()
			}
			f.settling = false
			if err == nil && statErr == nil {
				err = keepTimes(f.fd, &before)
			}
		}
		if err == nil {
			f.idx.SetDirty(false)
		}
		err = errors.Join(err, f.settleJournal(), f.publishIndex())
	}
	f.closed = true
	f.chunks.drop()
	f.account()
	if f.timer != nil {
		f.timer.Stop()
	}
	f.mu.Unlock()
	f.inFlight.Wait() // read-ahead jobs
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cache.dropFile(f.id)
	f.resetStreams()
	f.dropShared()
	err = errors.Join(err, f.idx.Close(), f.fd.Close())
	if f.jnl != nil {
		err = errors.Join(err, f.jnl.close())
	}
	if err != nil {
		return fmt.Errorf("%s: close: %w", f.name, err)
	}
	return nil
}

// Idle flushes the File, marks its index clean and releases its lock on
// the backing file, so that other processes may take the file, while the
// File stays open (index mapped) for a cheap Resume. A File opened again
// and again (a log appended to by a shell's >>) then costs a lookup, not an
// open and index mapping each time. An error wrapping ErrNotIdle comes
// after a good flush: nothing is lost, but the File could not let go of its
// lock; close it instead.
func (f *File) Idle() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return os.ErrClosed
	}
	if f.unlocked.Load() {
		return nil // already: the stamp of the state it left stays
	}
	if !f.opts.ReadOnly {
		if err := f.flushLocked(); err != nil {
			return err
		}
		f.idx.SetDirty(false)
		if err := f.settleJournal(); err != nil {
			return err
		}
		if err := f.publishIndex(); err != nil {
			return err
		}
	}
	st, err := f.fd.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w: %w", f.name, ErrNotIdle, err)
	}
	if !f.idx.InMemory() {
		// Another process may change the sidecar once the lock is gone:
		// read through a view that keeps the record count, sizes and last
		// record of now, and checks each other record as it reads it
		// (Index.View), until the lock is taken back.
		f.shared, f.idx = f.idx, f.idx.View()
	}
	if err := unix.Flock(int(f.fd.Fd()), unix.LOCK_UN); err != nil {
		f.unshare()
		return fmt.Errorf("%s: %w: unlock: %w", f.name, ErrNotIdle, err)
	}
	f.idleStamp = stampOf(st)
	f.seen, f.seenAt = f.idleStamp, time.Now()
	f.checkedAt.Store(time.Now().UnixNano())
	f.unlocked.Store(true)
	return nil
}

// Resume takes an idle File back: it locks the backing file again and
// checks that nothing changed it meanwhile. false means the File is stale
// (or another process holds the file): close it and open the file anew.
func (f *File) Resume() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || !f.unlocked.Load() || f.private {
		return false
	}
	if err := unix.Flock(int(f.fd.Fd()), f.lockHow()|unix.LOCK_NB); err != nil {
		return false
	}
	st, err := f.fd.Stat()
	if err != nil || stampOf(st) != f.idleStamp || !f.sidecarsUnchanged() {
		unix.Flock(int(f.fd.Fd()), unix.LOCK_UN)
		return false
	}
	f.unshare()
	f.idleStamp = fileStamp{}
	f.unlocked.Store(false)
	return true
}

// unshare goes back from the view of the index Idle made to the shared
// mapping (the file is unchanged and locked again).
func (f *File) unshare() {
	if f.shared != nil {
		f.idx.Close()
		f.idx, f.shared = f.shared, nil
	}
}

// dropShared forgets the shared mapping Idle kept (the file changed: the
// index is loaded anew).
func (f *File) dropShared() {
	if f.shared != nil {
		f.shared.Close()
		f.shared = nil
	}
}

// Unlocked reports whether the File holds no lock (after Idle, or opened
// while another process writes): it follows changes by others (Refresh).
func (f *File) Unlocked() bool { return f.unlocked.Load() }

// Generation counts the times the File loaded the backing file anew
// because another process changed it (cached blocks dropped, index
// reloaded). Pages a caller cached from an earlier generation may be stale.
func (f *File) Generation() uint64 { return f.generation.Load() }

// InSync reports whether the File describes the backing file as it is now:
// always while it holds the lock; an unlocked File compares the backing
// file with the state it last loaded (another process may have changed it
// since).
func (f *File) InSync() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed || !f.unlocked.Load() {
		return !f.closed
	}
	st, err := f.fd.Stat()
	return err == nil && f.current(st)
}

// Lock takes an unlocked File (after Idle, or opened while another process
// wrote) back for writing: it waits up to Options.LockWait for the lock
// (the error wraps EWOULDBLOCK while another process holds it), then, if
// the file changed meanwhile, loads it again as Open would (journal
// replay, index check or rebuild). A locked File is left as it is.
func (f *File) Lock() error {
	if f.unlocked.Load() {
		// Wait for the lock without f.mu: reads and stat go on meanwhile.
		if err := lockWait(int(f.fd.Fd()), f.lockHow(), f.opts.LockWait); err != nil {
			return fmt.Errorf("%s: file is in use by another gzfs process: %w", f.name, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return os.ErrClosed
	}
	return f.lockLocked()
}

// lockLocked is Lock with f.mu held for writing.
func (f *File) lockLocked() error {
	if !f.unlocked.Load() {
		return nil
	}
	if err := lockWait(int(f.fd.Fd()), f.lockHow(), f.opts.LockWait); err != nil {
		return fmt.Errorf("%s: file is in use by another gzfs process: %w", f.name, err)
	}
	st, err := f.fd.Stat()
	if err == nil && stampOf(st) == f.idleStamp && !f.private && f.sidecarsUnchanged() {
		f.unshare()
		f.idleStamp = fileStamp{}
		f.unlocked.Store(false)
		return nil
	}
	// Changed behind this File: start over from what the disk holds.
	f.dropPages()
	old := f.view()
	f.unlocked.Store(false)
	if f.jnl != nil {
		f.jnl.close() // reopened at the next in-place batch
		f.jnl = nil
	}
	if err := f.recover(); err != nil {
		if f.jnl != nil {
			f.jnl.close()
			f.jnl = nil
		}
		unix.Flock(int(f.fd.Fd()), unix.LOCK_UN)
		f.unlocked.Store(true)
		if f.idx != old.idx {
			f.idx.Close()
		}
		f.restore(old)
		return fmt.Errorf("%s: %w", f.name, err)
	}
	old.idx.Close()
	f.dropShared()
	f.cache.dropFile(f.id)
	f.resetStreams()
	f.generation.Add(1)
	f.idleStamp, f.seen, f.reloaded = fileStamp{}, fileStamp{}, fileStamp{}
	f.private, f.fastTail = false, -1
	f.chunks.drop()
	f.log.Info("file changed by another process while unlocked; reloaded", "file", f.name, "index", f.state)
	return nil
}

// settleJournal makes the emptying of a journal durable when a batch
// fsynced into it may still be on disk (see journal.lingering), or, on a
// file system that does not order metadata globally, when any batch was
// emptied without an fsync (see journal.orderedFS), before the File lets
// go of the backing file. Callers hold f.mu for writing.
func (f *File) settleJournal() error {
	if f.jnl == nil || !f.jnl.lingering && (f.jnl.orderedFS || !f.jnl.unsynced) {
		return nil
	}
	if err := f.jnl.sync(); err != nil {
		return fmt.Errorf("%s: %w", f.name, err)
	}
	return nil
}

// lockHow is the flock this File holds while locked.
func (f *File) lockHow() int {
	if f.opts.ReadOnly {
		return unix.LOCK_SH
	}
	return unix.LOCK_EX
}

// mayWrite reports whether this File may change the backing file and its
// sidecars: opened for writing and holding the lock.
func (f *File) mayWrite() bool { return !f.opts.ReadOnly && !f.unlocked.Load() }

// fileStamp is what tells that a backing file was changed.
type fileStamp struct {
	size, mtime, ctime int64
}

func stampOf(st os.FileInfo) fileStamp {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fileStamp{size: st.Size(), mtime: st.ModTime().UnixNano()}
	}
	return fileStamp{st.Size(), sys.Mtim.Nano(), sys.Ctim.Nano()}
}

// tailCheck is the index's check of the backing file's end: the last 8
// bytes (CRC32 and ISIZE) of the last data member, which ends at dataEnd.
func (f *File) tailCheck(dataEnd int64) (uint64, error) {
	if dataEnd < 8 {
		return 0, nil
	}
	var b [8]byte
	if _, err := f.headerSource().ReadAt(b[:], dataEnd-8); err != nil {
		return 0, fmt.Errorf("read tail: %w", err)
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// fsIocGetVersion is FS_IOC_GETVERSION, _IOR('v', 1, long): the inode
// generation of ext4, btrfs, xfs and others (x/sys/unix does not name it).
const fsIocGetVersion = 0x80087601

// backingID identifies the open backing file fd with inode number ino: its
// birth time (statx) and, where the filesystem has one, its inode
// generation, so that sidecars left by a deleted file are never taken for
// those of a new file that got the same inode number. Birth is 0 when the
// filesystem tells neither.
func backingID(fd int, ino uint64) blockindex.FileID {
	var birth uint64
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_BTIME, &stx); err == nil && stx.Mask&unix.STATX_BTIME != 0 {
		birth = uint64(stx.Btime.Sec)*1e9 + uint64(stx.Btime.Nsec)
	}
	if gen, err := unix.IoctlGetUint32(fd, fsIocGetVersion); err == nil && gen != 0 {
		birth = birth*0x100000001b3 ^ uint64(gen)
	}
	return blockindex.FileID{Ino: ino, Birth: birth}
}

// lockWait takes the flock how on fd, retrying for up to wait while
// another holder has it.
func lockWait(fd, how int, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	pause := 2 * time.Millisecond
	for {
		err := unix.Flock(fd, how|unix.LOCK_NB)
		if err != unix.EWOULDBLOCK || !time.Now().Before(deadline) {
			return err
		}
		time.Sleep(min(pause, time.Until(deadline)))
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// keepTimes sets the access and modification times of the backing file
// back to those of st (utimensat with AT_EMPTY_PATH: futimens).
func keepTimes(fd backingFile, st *unix.Stat_t) error {
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(int(fd.Fd()), "", ts, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("%s: keep the times after recompressing the last block: %w", fd.Name(), err)
	}
	return nil
}
