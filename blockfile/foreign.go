package blockfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/gzfs/gzfs/gzindex"
)

// Foreign is a gzip file that is not BGZF (written by gzip, pigz, log
// rotation...), opened read-only for random access. With its checkpoint
// index (a gzindex sidecar in the store, built by BuildIndex) a read at
// any offset inflates at most one span; without it, reads stream from the
// start (forward reads continue the stream). It is safe for concurrent
// use; indexed reads run in parallel.
type Foreign struct {
	name  string
	f     *os.File
	store *Store
	id    gzindex.Identity
	log   *slog.Logger

	mu      sync.RWMutex
	idx     *gzindex.Index   // nil until opened or built
	live    *gzindex.Live    // the index being built: its checkpoints so far
	retired []*gzindex.Index // indexes dropped while open (closed with the Foreign)
	state   string           // for Stats: "valid", "missing", "stale", ...
	closed  bool
	stop    bool // ask a running build to stop
	build   sync.WaitGroup
	running bool

	curMu   sync.Mutex
	cursors []*gzindex.Reader // positioned readers of the index, oldest first
	spans   []*span           // spans inflated ahead of a sequential reader
	seqFrom int64             // where the current sequential stream started
	seqAt   int64             // the end of the furthest read asked for in it (0: none)

	streamMu sync.Mutex
	zr       io.Reader // NewGzipStream of the file, nil until a read without an index
	pos      int64     // uncompressed offset of zr
}

// OpenForeign opens the foreign gzip file f (the Foreign owns it from now
// on) and its checkpoint index when one matches the file; a stale or
// damaged index is removed (BuildIndex makes a new one). store may be nil
// for a look without an index.
func OpenForeign(f *os.File, name string, store *Store, log *slog.Logger) (*Foreign, error) {
	if log == nil {
		log = slog.Default()
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	id, err := foreignIdentity(f, st)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	x := &Foreign{name: name, f: f, store: store, id: id, log: log}
	x.state = "missing"
	if !gzindex.Supported {
		x.state = "unsupported (pure-Go build)"
		return x, nil
	}
	if store == nil {
		return x, nil // a read-only look (stats) where no store exists
	}
	path := store.checkpointPath(id.Ino)
	idx, err := gzindex.Open(path, id)
	switch {
	case err == nil:
		x.idx, x.state = idx, "valid"
	case errors.Is(err, os.ErrNotExist):
	case errors.Is(err, gzindex.ErrStale), errors.Is(err, gzindex.ErrDamaged):
		x.state = "dropped (" + err.Error() + ")"
		log.Info("checkpoint index does not match; it will be rebuilt", "file", name, "reason", err)
		os.Remove(path)
	default:
		x.state = "unreadable (" + err.Error() + ")"
	}
	return x, nil
}

// foreignIdentity is what names the state of a foreign file for its index.
func foreignIdentity(f *os.File, st os.FileInfo) (gzindex.Identity, error) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || !st.Mode().IsRegular() {
		return gzindex.Identity{}, errors.New("not a regular file")
	}
	fid := backingID(int(f.Fd()), sys.Ino)
	id := gzindex.Identity{Ino: fid.Ino, Birth: fid.Birth, Size: st.Size(), MTime: sys.Mtim.Nano()}
	if st.Size() >= 8 {
		if _, err := f.ReadAt(id.Tail[:], st.Size()-8); err != nil {
			return gzindex.Identity{}, err
		}
	}
	return id, nil
}

// trailerISize is the ISIZE of the file's last member (its last 4 bytes):
// that member's size modulo 4 GiB, what gzip -l shows.
func trailerISize(id gzindex.Identity) int64 {
	return int64(binary.LittleEndian.Uint32(id.Tail[4:]))
}

// PeekForeignSize returns the uncompressed size of the foreign gzip file
// open as f, without changing anything: exact (true) from a checkpoint
// index that matches the file, else the ISIZE of the last member (the
// size modulo 4 GiB of that member, what gzip -l shows) and false.
func PeekForeignSize(f *os.File, store *Store) (int64, bool, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, false, err
	}
	id, err := foreignIdentity(f, st)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if gzindex.Supported {
		if idx, err := gzindex.Open(store.checkpointPath(id.Ino), id); err == nil {
			defer idx.Close()
			return idx.Size(), true, nil
		}
	}
	if id.Size < 18 {
		return 0, false, nil
	}
	return trailerISize(id), false, nil
}

// NeedsIndex reports whether an index could be built and none is there
// or being built.
func (x *Foreign) NeedsIndex() bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return gzindex.Supported && x.store != nil && x.idx == nil && !x.running && !x.closed
}

// Indexed reports whether reads go through the checkpoint index.
func (x *Foreign) Indexed() bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.idx != nil
}

// Fd returns the descriptor of the gzip file, which x owns (for fstat:
// the attributes of the file x reads, whatever now has its name).
func (x *Foreign) Fd() int { return int(x.f.Fd()) }

// Size returns the uncompressed size and true when the index knows it;
// otherwise the gzip trailer's ISIZE (the size modulo 4 GiB of the last
// member only) and false.
func (x *Foreign) Size() (int64, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.idx != nil {
		return x.idx.Size(), true
	}
	if x.id.Size < 18 {
		return 0, false
	}
	return trailerISize(x.id), false
}

// ForeignStats describes a foreign file and its index.
type ForeignStats struct {
	Stored      int64  // bytes of the gzip file
	Logical     int64  // uncompressed bytes (-1 while unknown)
	IndexState  string // "valid", "built", "missing", "building", ...
	IndexBytes  int64  // size of the checkpoint index
	Checkpoints int64
	Span        int64
	Damaged     int64 // compressed offset where the data stops decoding, -1 if none
}

// Stats returns the file's and the index's state.
func (x *Foreign) Stats() ForeignStats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	s := ForeignStats{Stored: x.id.Size, Logical: -1, IndexState: x.state, Damaged: -1}
	if x.running {
		s.IndexState = "building"
	}
	if x.idx != nil {
		s.Logical, s.IndexBytes, s.Checkpoints, s.Span, s.Damaged = x.idx.Size(), x.idx.Bytes(), x.idx.Len(), x.idx.Span(), x.idx.Damaged()
	}
	return s
}

// BuildIndex builds the checkpoint index if there is none (one pass over
// the file; progress, if set, is called with compressed and uncompressed
// bytes so far). Reads go on meanwhile (streaming) and use the index once
// it is complete. A Close stops it.
func (x *Foreign) BuildIndex(span int64, progress func(in, out int64)) error {
	if !gzindex.Supported {
		return fmt.Errorf("%s: %w", x.name, errors.New("checkpoint indexes need the libdeflate build"))
	}
	if x.store == nil {
		return fmt.Errorf("%s: no sidecar store for its index", x.name)
	}
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return os.ErrClosed
	}
	if x.idx != nil || x.running {
		x.mu.Unlock()
		return nil
	}
	x.running, x.stop = true, false
	x.live = &gzindex.Live{}
	live := x.live
	id := x.id // the file as it was when the build started
	x.build.Add(1)
	x.mu.Unlock()
	defer x.build.Done()
	ckp := x.store.checkpointPath(id.Ino)
	idx, err := gzindex.Build(x.f, id, ckp, gzindex.BuildOptions{
		Span: span, Progress: progress, Live: live,
		Stop: func() bool { x.mu.RLock(); defer x.mu.RUnlock(); return x.stop },
	})
	x.mu.Lock()
	defer x.mu.Unlock()
	x.running = false
	x.live = nil
	if err == nil && x.id != id {
		// The file changed while the build read it (a build polls its Stop
		// only now and then, and a small file is built before it looks):
		// this index is of the old bytes.
		idx.Close()
		os.Remove(ckp)
		err = gzindex.ErrStopped
	}
	if err != nil {
		if !errors.Is(err, gzindex.ErrStopped) {
			x.state = "build failed (" + err.Error() + ")"
		}
		return fmt.Errorf("%s: build index: %w", x.name, err)
	}
	if x.closed {
		idx.Close()
		return os.ErrClosed
	}
	x.idx, x.state = idx, "built"
	if d := idx.Damaged(); d >= 0 {
		x.log.Error("gzip data damaged: reads past it fail", "file", x.name, "compressed_offset", d, "readable_bytes", idx.Size())
	}
	return nil
}

// ExportGZIDX writes the checkpoint index in indexed_gzip's layout (see
// gzindex.Index.ExportGZIDX).
func (x *Foreign) ExportGZIDX(w io.Writer) error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.idx == nil {
		return fmt.Errorf("%s: no checkpoint index", x.name)
	}
	return x.idx.ExportGZIDX(w)
}

// Rebuild builds the checkpoint index anew with the given span, replacing
// the one in use (for 'gzfs index --span').
func (x *Foreign) Rebuild(span int64, progress func(in, out int64)) error {
	x.mu.Lock()
	if x.running {
		x.mu.Unlock()
		return fmt.Errorf("%s: an index build is running", x.name)
	}
	if x.idx != nil {
		// A read that took the index before may still use it: it stays
		// mapped until the Foreign is closed, as in checkUnchanged.
		x.retired = append(x.retired, x.idx)
	}
	x.idx = nil
	x.mu.Unlock()
	x.dropReaders()
	return x.BuildIndex(span, progress)
}

// dropReaders forgets every cursor and span (the index they read is going
// away) and waits for the spans still being inflated. A span started after
// it took the list inflates through an index that stays mapped (retired)
// until Close, and Close marks the Foreign closed first, after which no span
// starts (prefetch checks under curMu).
func (x *Foreign) dropReaders() {
	x.curMu.Lock()
	for _, c := range x.cursors {
		c.Close()
	}
	x.cursors = nil
	spans := x.spans
	x.spans = nil
	for _, s := range spans {
		s.dropped = true
		<-spanSlots
	}
	x.curMu.Unlock()
	for _, s := range spans {
		<-s.done
	}
}

// ReadAt reads uncompressed bytes at off: through the index when there is
// one, else by streaming. Past damaged data it fails with an error wrapping
// ErrCorrupt that names the file and the offset (the caller logs it).
func (x *Foreign) ReadAt(p []byte, off int64) (int, error) {
	if err := x.checkUnchanged(); err != nil {
		return 0, err
	}
	x.mu.RLock()
	idx, live := x.idx, x.live
	closed := x.closed
	x.mu.RUnlock()
	if closed {
		return 0, os.ErrClosed
	}
	if len(p) == 0 {
		return 0, nil // nothing to read (at the damage of a damaged file too)
	}
	if idx == nil && live != nil && !x.streamAt0(off) {
		// The index is being built: start at the last checkpoint found so
		// far before off, rather than at the start of the file.
		n, err := live.ReadAt(x.f, p, off)
		if !errors.Is(err, gzindex.ErrNotLive) {
			if err != nil && err != io.EOF {
				err = fmt.Errorf("%s: %w: %v", x.name, ErrCorrupt, err)
			}
			return n, err
		}
	}
	if idx != nil {
		n, err := x.indexedAt(idx, p, off)
		if errors.Is(err, gzindex.ErrCorrupt) {
			err = fmt.Errorf("%s: %w: %v", x.name, ErrCorrupt, err)
		}
		return n, err
	}
	return x.streamAt(p, off)
}

// maxCursors bounds the sequential readers a Foreign keeps positioned;
// cursorReach is how far ahead of a cursor a read may start and still use
// it (skipping) rather than a checkpoint. A read belongs to the current
// sequential stream when it starts at or after the stream's start, at most
// seqReach behind the furthest read asked for (the kernel's read-ahead
// asks for several pieces at once; they arrive nearly in order and are
// served out of order) and at most seqAhead past it.
const (
	maxCursors  = 4
	cursorReach = 1 << 20
	seqReach    = 8 << 20
	seqAhead    = 1 << 20
)

// A span is the output between two checkpoints, inflated ahead of a
// sequential reader by another core (the spans after the reader are
// independent: each starts at its own checkpoint).
type span struct {
	idx        *gzindex.Index // the index it was inflated through
	start, end int64
	buf        []byte
	err        error
	done       chan struct{}
	// Guarded by curMu: bytes handed to readers (all of them, and the span
	// is dropped), readers copying from buf now, and whether the span left
	// x.spans (its buffer is recycled once dropped, done and unused).
	served  int64
	users   int
	dropped bool
	used    time.Time // when a reader last took bytes from it (or it was started)
}

// spanIdle is how long a finished span no reader touched keeps its slot
// when another file's stream needs one.
const spanIdle = time.Second

// spanHolders are the Foreigns that have held a span slot (until Close):
// where takeSlotLocked looks for idle spans of other files.
var spanHolders struct {
	sync.Mutex
	m map[*Foreign]struct{}
}

// spanBufs recycles span buffers: a stream inflates one span after another,
// and fresh 4 MiB buffers would be cleared, faulted in and collected each
// time (a collection every few milliseconds at 700 MB/s).
var spanBufs sync.Pool

func getSpanBuf(n int64) []byte {
	if p, ok := spanBufs.Get().(*[]byte); ok && int64(cap(*p)) >= n {
		return (*p)[:n]
	}
	return make([]byte, n)
}

// Read-ahead of spans: how many spans ahead of a sequential reader, the
// largest span worth buffering, and the spans buffered in the whole
// process (memory: at most spanSlots × maxSpan).
const (
	spanDepth = 3
	maxSpan   = 16 << 20
)

var spanSlots = make(chan struct{}, 8)

// indexedAt reads through the index. A read that belongs to a sequential
// stream (it starts near where the stream's last request ended: the
// kernel's read-ahead, cat, unpack) is served from spans inflated whole,
// each once, from their checkpoints on the other cores: the span holding
// it (unless a cursor stands just before it) and the next ones. Any other
// read continues a cursor just before it or inflates from the checkpoint
// before it; its end starts a new stream.
func (x *Foreign) indexedAt(idx *gzindex.Index, p []byte, off int64) (int, error) {
	if off >= idx.Size() || len(p) == 0 {
		return idx.ReadAt(x.f, p, off)
	}
	end := off + int64(len(p))
	x.curMu.Lock()
	stream := x.seqAt > 0 && off >= max(x.seqFrom, x.seqAt-seqReach) && off <= x.seqAt+seqAhead
	if stream {
		x.seqAt = max(x.seqAt, end)
	} else {
		x.seqFrom, x.seqAt = off, end
	}
	near := x.cursorNearLocked(off)
	x.curMu.Unlock()
	if stream {
		x.prefetch(idx, off, !near)
	}
	n := x.fromSpans(idx, p, off)
	if n == len(p) {
		return n, nil
	}
	if off+int64(n) >= idx.Size() {
		// The index's own end: io.EOF, or for a damaged file the damage
		// it ends at (the read there fails, as one starting there does).
		_, err := idx.ReadAt(x.f, nil, idx.Size())
		return n, err
	}
	m, err := x.fromCursor(idx, p[n:], off+int64(n))
	return n + m, err
}

// cursorNearLocked reports whether a free cursor stands at or just before
// off. Callers hold curMu.
func (x *Foreign) cursorNearLocked(off int64) bool {
	for _, c := range x.cursors {
		if c.Offset() <= off && off-c.Offset() <= cursorReach {
			return true
		}
	}
	return false
}

// fromSpans serves what it can of a read from spans inflated ahead,
// waiting for those in flight, and returns how many bytes (0 when no span
// holds off).
func (x *Foreign) fromSpans(idx *gzindex.Index, p []byte, off int64) (n int) {
	for n < len(p) {
		at := off + int64(n)
		x.curMu.Lock()
		var s *span
		for _, k := range x.spans {
			if k.idx == idx && k.start <= at && at < k.end {
				s = k
				break
			}
		}
		if s != nil {
			s.users++
		}
		x.curMu.Unlock()
		if s == nil {
			break
		}
		<-s.done
		if s.err != nil {
			x.curMu.Lock()
			s.users--
			x.dropSpanLocked(s)
			x.curMu.Unlock()
			break // read it the slow way, which reports the error
		}
		c := copy(p[n:], s.buf[at-s.start:])
		n += c
		x.curMu.Lock()
		s.users--
		s.used = time.Now()
		s.served += int64(c)
		if s.dropped || s.served >= s.end-s.start {
			x.dropSpanLocked(s) // every byte went to a reader (or it was dropped meanwhile: recycle)
		}
		x.curMu.Unlock()
	}
	return n
}

// prefetch starts inflating, while slots are free, the spans of the
// stream at output offset off that are not buffered yet: the one holding
// off when current is set, and the next ones, spanDepth spans in all. It
// first drops this file's inflated spans the stream has left behind.
func (x *Foreign) prefetch(idx *gzindex.Index, off int64, current bool) {
	x.dropPassed(off - seqReach)
	k := idx.Search(off) // the first span starting at or after off
	if current && k > 0 {
		if p, err := idx.At(k); k == idx.Len() || (err == nil && p.Out > off) {
			k-- // the span holding off
		}
	}
	for j := k; j < k+spanDepth && j < idx.Len(); j++ {
		p, err := idx.At(j)
		if err != nil {
			return
		}
		end := idx.Size()
		if j+1 < idx.Len() {
			q, err := idx.At(j + 1)
			if err != nil {
				return
			}
			end = q.Out
		}
		if end-p.Out > maxSpan || end <= p.Out {
			return
		}
		x.curMu.Lock()
		have := false
		for _, s := range x.spans {
			if s.idx == idx && s.start == p.Out {
				have = true
			}
		}
		if have || x.closedLocked() {
			x.curMu.Unlock()
			continue
		}
		if !x.takeSlotLocked(off) {
			x.curMu.Unlock()
			return // the process buffers enough spans already
		}
		s := &span{idx: idx, start: p.Out, end: end, done: make(chan struct{}), buf: getSpanBuf(end - p.Out), used: time.Now()}
		x.spans = append(x.spans, s)
		x.curMu.Unlock()
		go func() {
			defer close(s.done)
			var rd *gzindex.Reader
			if rd, s.err = idx.NewReader(x.f, s.start); s.err == nil {
				_, s.err = io.ReadFull(rd, s.buf)
				rd.Close()
			}
		}()
	}
}

// takeSlotLocked takes a slot for a span of the stream now reading at off.
// When the process has none free, finished spans that no reader uses give
// theirs back first: this file's that lie wholly behind off (the stream
// left them with bytes unread, or a reader went back), and any file's that
// no reader touched for spanIdle (a reader that stopped mid-file, such as a
// pager: they would hold their slots until Close). Callers hold curMu.
func (x *Foreign) takeSlotLocked(off int64) bool {
	select {
	case spanSlots <- struct{}{}:
		x.holdsSpans()
		return true
	default:
	}
	now := time.Now()
	x.dropIdleLocked(func(s *span) bool { return s.end <= off || now.Sub(s.used) > spanIdle })
	spanHolders.Lock()
	for o := range spanHolders.m {
		if o != x && o.curMu.TryLock() { // never wait for another file's lock while holding ours
			o.dropIdleLocked(func(s *span) bool { return now.Sub(s.used) > spanIdle })
			o.curMu.Unlock()
		}
	}
	spanHolders.Unlock()
	select {
	case spanSlots <- struct{}{}:
		x.holdsSpans()
		return true
	default:
		return false
	}
}

// dropIdleLocked drops this file's finished spans that no reader uses and
// that stale says may go. Callers hold curMu.
func (x *Foreign) dropIdleLocked(stale func(*span) bool) {
	var drop []*span
	for _, s := range x.spans {
		select {
		case <-s.done:
			if s.users == 0 && stale(s) {
				drop = append(drop, s)
			}
		default:
		}
	}
	for _, s := range drop {
		x.dropSpanLocked(s)
	}
}

// holdsSpans records x among the files whose idle spans others may drop.
func (x *Foreign) holdsSpans() {
	spanHolders.Lock()
	defer spanHolders.Unlock()
	if spanHolders.m == nil {
		spanHolders.m = make(map[*Foreign]struct{})
	}
	spanHolders.m[x] = struct{}{}
}

// dropPassed drops this file's finished, unused spans that end at or
// before off (a stream passed them without reading all their bytes: a
// reader that skipped ahead, or bytes the kernel already had), freeing
// their slots.
func (x *Foreign) dropPassed(off int64) {
	x.curMu.Lock()
	defer x.curMu.Unlock()
	x.dropIdleLocked(func(s *span) bool { return s.end <= off })
}

// closedLocked reports whether Close has begun (callers hold curMu; the
// flag is read under mu).
func (x *Foreign) closedLocked() bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.closed
}

// dropSpanLocked forgets a span and frees its slot. Callers hold curMu.
// The buffer of a dropped span that is done and that no reader copies from
// any more goes back to spanBufs (by the last reader otherwise, when it
// drops the span again).
func (x *Foreign) dropSpanLocked(s *span) {
	if !s.dropped {
		for i, k := range x.spans {
			if k == s {
				x.spans = append(x.spans[:i], x.spans[i+1:]...)
				<-spanSlots
				break
			}
		}
		s.dropped = true
	}
	select {
	case <-s.done: // its goroutine no longer writes buf
		if s.users == 0 && s.buf != nil {
			b := s.buf[:0]
			s.buf = nil
			spanBufs.Put(&b)
		}
	default:
	}
}

// fromCursor reads through a positioned cursor: the one a read ending at
// off left, or a new one from the checkpoint before off.
func (x *Foreign) fromCursor(idx *gzindex.Index, p []byte, off int64) (int, error) {
	var c *gzindex.Reader
	x.curMu.Lock()
	for i, k := range x.cursors {
		if k.Offset() <= off && off-k.Offset() <= cursorReach {
			c = k
			x.cursors = append(x.cursors[:i], x.cursors[i+1:]...)
			break
		}
	}
	x.curMu.Unlock()
	var err error
	if c == nil {
		if c, err = idx.NewReader(x.f, off); err != nil {
			return 0, err
		}
	} else if err = c.Skip(off - c.Offset()); err != nil {
		c.Close()
		return 0, err
	}
	n, err := io.ReadFull(c, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	if err != nil {
		c.Close()
		return n, err
	}
	x.curMu.Lock()
	x.cursors = append(x.cursors, c)
	if len(x.cursors) > maxCursors {
		x.cursors[0].Close()
		x.cursors = x.cursors[1:]
	}
	x.curMu.Unlock()
	return n, nil
}

// checkUnchanged compares the file with the state its index describes
// (size and mtime, one fstat): a file rewritten while open must never be
// read through the old index. A changed file drops its index and its
// buffered spans and cursors; reads then stream the new bytes and a new
// index can be built (the mount builds it at the next open).
func (x *Foreign) checkUnchanged() error {
	st, err := x.f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", x.name, err)
	}
	sys, _ := st.Sys().(*syscall.Stat_t)
	x.mu.RLock()
	same := st.Size() == x.id.Size && (sys == nil || sys.Mtim.Nano() == x.id.MTime)
	tail := x.id.Tail
	x.mu.RUnlock()
	if same && st.Size() >= 8 {
		// mtime ticks coarsely: a rewrite of the same size within one
		// tick shows in the last member's CRC32 and ISIZE.
		var now [8]byte
		if _, err := x.f.ReadAt(now[:], st.Size()-8); err == nil && now != tail {
			same = false
		}
	}
	if same {
		return nil
	}
	x.mu.Lock()
	if x.running {
		x.stop = true // the build reads a file that changed under it
		x.live = nil  // and its checkpoints so far are of the old bytes
	}
	old := x.idx
	x.idx = nil
	if id, err := foreignIdentity(x.f, st); err == nil {
		x.id = id
	}
	x.state = "dropped (the file changed while open)"
	x.mu.Unlock()
	x.dropReaders()
	x.streamMu.Lock()
	x.zr = nil // the stream restarts on the new bytes
	x.streamMu.Unlock()
	if old != nil {
		x.log.Warn("gzip file changed while open: its checkpoint index is dropped", "file", x.name)
		os.Remove(x.store.checkpointPath(x.id.Ino))
		// old stays mapped for spans still being inflated; it is small
		// and goes with the Foreign.
		x.mu.Lock()
		x.retired = append(x.retired, old)
		x.mu.Unlock()
	}
	return nil
}

// streamAt0 reports whether the stream is positioned at off (a
// sequential reader: continuing it is cheapest).
func (x *Foreign) streamAt0(off int64) bool {
	x.streamMu.Lock()
	defer x.streamMu.Unlock()
	return x.zr != nil && x.pos == off
}

// streamAt serves a read without an index: a forward read continues the
// stream, an earlier one starts it again.
func (x *Foreign) streamAt(p []byte, off int64) (int, error) {
	x.streamMu.Lock()
	defer x.streamMu.Unlock()
	if x.zr == nil || off < x.pos {
		x.mu.RLock()
		size := x.id.Size
		x.mu.RUnlock()
		zr, err := NewGzipStream(io.NewSectionReader(x.f, 0, size))
		if err != nil {
			// The file starts with the gzip magic (else it would not be
			// foreign), so even io.EOF here is a header cut short.
			x.zr = nil
			return 0, fmt.Errorf("%s: %w: gzip header: %v", x.name, ErrCorrupt, err)
		}
		x.zr, x.pos = zr, 0
	}
	if off > x.pos {
		n, err := io.CopyN(io.Discard, x.zr, off-x.pos)
		x.pos += n
		if err != nil {
			return 0, x.streamErr(err, x.pos)
		}
	}
	n := 0
	for n < len(p) {
		m, err := x.zr.Read(p[n:])
		n += m
		x.pos += int64(m)
		if err != nil {
			return n, x.streamErr(err, x.pos)
		}
	}
	return n, nil
}

// streamErr maps an error of the stream: its end is io.EOF, anything else
// (a truncated or damaged stream) is corrupt data.
func (x *Foreign) streamErr(err error, at int64) error {
	if err == io.EOF {
		return io.EOF
	}
	return fmt.Errorf("%s: %w at uncompressed offset %d: %v", x.name, ErrCorrupt, at, err)
}

// Close stops a running build, waits for it and closes the file.
func (x *Foreign) Close() error {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return os.ErrClosed
	}
	x.closed, x.stop = true, true
	x.mu.Unlock()
	x.build.Wait()
	x.dropReaders()
	spanHolders.Lock()
	delete(spanHolders.m, x)
	spanHolders.Unlock()
	x.mu.Lock()
	defer x.mu.Unlock()
	var err error
	if x.idx != nil {
		err = x.idx.Close()
	}
	for _, r := range x.retired {
		r.Close()
	}
	return errors.Join(err, x.f.Close())
}
