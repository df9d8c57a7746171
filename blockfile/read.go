package blockfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/gzfs/gzfs/bgzf"
	"github.com/gzfs/gzfs/blockindex"
	"golang.org/x/sys/unix"
)

// readAheadBlocks is how many blocks past a sequential reader are inflated
// before they are asked for.
const readAheadBlocks = 16

// servedWindow is how far ahead of a read a block handed on whole still
// counts as this sequential run's (see readAhead): about what the kernel's
// read-ahead has in flight.
const servedWindow = 256

// readStreams is how many sequential readers of one file read-ahead follows
// at once: two processes reading different parts of a file (or one far
// behind the other) each keep theirs, where one shared detector saw
// neither as sequential. A read that continues none of them takes the
// place of a stream that never continued (a random reader's), else of the
// one used least recently: random reads between the requests of a
// sequential reader do not push it out.
const readStreams = 4

// readStream is what read-ahead knows of one sequential reader.
type readStream struct {
	last         int64        // the last block of its last read (aheadMu)
	end          int64        // where its last read ended, a logical offset (aheadMu)
	used         int64        // File.streamClock when it last matched a read (aheadMu)
	continued    bool         // a read continued it since its reader took the place (aheadMu)
	gen          atomic.Int64 // counts the readers that took this place (changed under aheadMu)
	aheadTo      int64        // read-ahead has been started up to this block (aheadMu)
	servedTo     atomic.Int64 // the last block its reads handed on whole (and dropped from the cache)
	prefetchedTo atomic.Int64 // the backing file was asked into the page cache up to here
}

// streamOf returns the stream a read of bytes [off, end), in blocks first
// to last, belongs to, and whether it continues it (a sequential read):
// it starts near where that stream's last read ended (the kernel sends a
// sequential reader's requests concurrently, so slightly out of order), and
// it either spans blocks (as the kernel's read-ahead requests do) or starts
// exactly where that read ended. Two small reads that merely fall into the
// same block are a random reader's: a read-ahead then would inflate blocks
// nobody asked for and ask the disk for megabytes of the backing file while
// the reader waits on it. A read that continues no stream starts one, in
// the place of another (see readStreams); gen tells that place's reader
// (see readAhead). The marks of the reader it replaces are kept as the
// file's retired mark (see reached).
func (f *File) streamOf(off, end, first, last int64) (st *readStream, gen int64, sequential bool) {
	f.aheadMu.Lock()
	defer f.aheadMu.Unlock()
	f.streamClock++
	var victim *readStream
	for i := range f.streams {
		s := &f.streams[i]
		if first >= s.last-2 && first <= s.last+1 && (first != last || off == s.end) {
			s.last, s.end, s.used, s.continued = max(s.last, last), end, f.streamClock, true
			return s, s.gen.Load(), true
		}
		if victim == nil || s.continued == victim.continued && s.used < victim.used || !s.continued && victim.continued {
			victim = s
		}
	}
	if m := victim.servedTo.Load(); m > 0 {
		f.retiredServed.Store(m)
	}
	victim.last, victim.end, victim.used, victim.aheadTo, victim.continued = last, end, f.streamClock, 0, false
	victim.servedTo.Store(0)
	victim.prefetchedTo.Store(0)
	return victim, victim.gen.Add(1), false
}

// markServed notes that the read of stream st (its reader gen) handed block
// k on whole; a read whose stream another reader took meanwhile marks the
// file's retired mark instead.
func (f *File) markServed(st *readStream, gen, k int64) {
	if st.gen.Load() == gen {
		storeMax(&st.servedTo, k)
	} else {
		storeMax(&f.retiredServed, k)
	}
}

// resetStreams forgets the streams: the blocks were dropped from the
// cache, or the file changed under them (read-ahead under way for them is
// dropped, see readAhead). Callers hold f.mu for writing.
func (f *File) resetStreams() {
	f.aheadMu.Lock()
	defer f.aheadMu.Unlock()
	for i := range f.streams {
		s := &f.streams[i]
		s.servedTo.Store(0)
		s.prefetchedTo.Store(0)
		s.aheadTo, s.continued = 0, false
		s.gen.Add(1)
	}
	f.retiredServed.Store(0)
}

// ReadAt reads len(p) bytes at logical offset off. Like os.File.ReadAt it
// returns io.EOF when fewer bytes are available. A damaged block gives an
// error wrapping ErrCorrupt (a *BlockError, which the caller logs: the
// engine does not, so that one bad read makes one log line) and nothing
// of that block; but
// first, once per state of the backing file, the index is loaded again
// and the read tried again, since an index that looks clean can still be
// stale (power loss before the kernel wrote the data back, or another
// machine's writer on a shared volume).
//
// An unlocked File (see Options.ReadWhileLocked and Idle) reads a file
// another process may be writing: every block it returns passed its checks
// whole (BSIZE, block number, CRC32, ISIZE), so it is the old or the new
// content of that block; a block that fails them is read again, after the
// index is reloaded or a short pause (the writer may be midway through it),
// up to len(readPauses) times before it reads as damaged.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	return f.read(p, off, nil)
}

// maxVecSlices bounds the slices of a Vec: the kernel takes at most 1024
// pieces in one writev (header included), and a 1 MiB read of a BGZF file
// with tiny members (other tools') would touch thousands of blocks; past
// the bound the rest is copied into the caller's buffer, as one slice.
const maxVecSlices = 512

// Vec holds what ReadVec read, without copying it: Slices, in order, are
// the engine's inflated blocks where it could (they are never modified
// while v holds them) and parts of the caller's buffer elsewhere (blocks
// with unflushed changes, holes).
type Vec struct {
	Slices [][]byte
	pins   []*block
}

// Release gives the engine's blocks back and empties v; the slices must not
// be used afterwards. It may be called more than once.
func (v *Vec) Release() {
	for _, b := range v.pins {
		b.release()
	}
	clear(v.pins)
	clear(v.Slices)
	v.pins, v.Slices = v.pins[:0], v.Slices[:0]
}

// ReadVec is ReadAt without the copy of cached blocks into p: the bytes
// read are in v (which must be empty), until v.Release. On an error other
// than io.EOF, v is left empty. The mount answers reads with it: the
// kernel copies the slices straight into its page cache.
func (f *File) ReadVec(p []byte, off int64, v *Vec) (int, error) {
	n, err := f.read(p, off, v)
	if err != nil && err != io.EOF {
		v.Release()
	}
	return n, err
}

// read is ReadAt (v nil) and ReadVec.
func (f *File) read(p []byte, off int64, v *Vec) (int, error) {
	unlocked := f.unlocked.Load()
	if unlocked {
		f.refreshIfDue()
	}
	n, err := f.readAt(p, off, v)
	var be *BlockError
	for try := 0; try < len(readPauses) && errors.As(err, &be); try++ {
		if v != nil {
			v.Release()
		}
		if !f.reloadIndex(be) {
			if !unlocked {
				break
			}
			time.Sleep(readPauses[try])
		}
		n, err = f.readAt(p, off, v)
	}
	return n, err
}

// readPauses are the waits between the tries of a read of a file another
// process writes (about 0.2 s in all: a journaled batch of the writer,
// fsyncs included, takes up to tens of milliseconds).
var readPauses = []time.Duration{2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond,
	20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}

// readAt reads into p, or, when v is not nil, into v (see ReadVec).
func (f *File) readAt(p []byte, off int64, v *Vec) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", f.name, off)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return 0, os.ErrClosed
	}
	if f.broken != nil {
		return 0, f.broken
	}
	if off >= f.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), f.size-off))
	if n == 0 {
		return 0, nil
	}
	g := f.geom()
	k0, err := g.blockOf(off, f.idx.Find)
	if err != nil {
		return 0, f.lookupErr(-1, err)
	}
	k1, err := g.blockOf(off+int64(n)-1, f.idx.Find)
	if err != nil {
		return 0, f.lookupErr(-1, err)
	}
	if f.unlocked.Load() {
		// Records another process changes (a view) can put k0 and k1 far
		// apart: check the span before inflating it.
		if err := f.checkSpan(g, k0, k1, off, off+int64(n)); err != nil {
			return 0, err
		}
	}
	st, gen, sequential := f.streamOf(off, off+int64(n), k0, k1)
	// Inflate the stored blocks this read needs in parallel.
	if err := f.loadBlocks(k0, k1); err != nil {
		return 0, err
	}
	done := 0
	inP := -1 // v's last slice is p[inP:done] (-1: it is not in p)
	for k := k0; k <= k1; k++ {
		start, end, err := f.blockRange(g, k)
		if err != nil {
			return done, f.lookupErr(k, err)
		}
		data, pin, err := f.blockData(k)
		if err != nil {
			return done, err
		}
		if err := f.checkRange(g, k, start, end, off+int64(done), pin); err != nil {
			pin.release()
			return done, err
		}
		from := max(off+int64(done), start)
		to := min(off+int64(n), end)
		seg := p[from-off : to-off]
		i := from - start
		if len(seg) == 0 { // an empty member (another tool's BGZF)
			pin.release()
			continue
		}
		if v != nil && pin != nil && i+int64(len(seg)) <= int64(len(data)) && len(v.Slices) < maxVecSlices {
			inP = -1
			v.Slices = append(v.Slices, data[i:i+int64(len(seg))])
			v.pins = append(v.pins, pin)
			if pin.served.Add(int64(len(seg))) >= end-start {
				// Every byte of the block went to the kernel's page cache
				// (in this reply, or in this and earlier ones): a
				// sequential reader will not ask for it again, so its
				// buffer is recycled as soon as the reply is written.
				// Random readers, which read parts of blocks, keep theirs
				// cached.
				f.markServed(st, gen, k) // first: see fetch
				f.cache.dropBlock(cacheKey{f.id, k}, pin)
			}
		} else {
			c := 0
			if i < int64(len(data)) {
				c = copy(seg, data[i:])
			}
			clear(seg[c:]) // beyond the block's stored bytes: a hole
			pin.release()
			if v != nil && inP >= 0 {
				v.Slices[len(v.Slices)-1] = p[inP : to-off] // p continues
			} else if v != nil {
				inP = int(from - off)
				v.Slices = append(v.Slices, seg)
			}
		}
		done = int(to - off)
	}
	if done < n { // the blocks ended early: their records changed meanwhile
		return done, &BlockError{File: f.name, Block: k1, LogicalStart: off + int64(done), LogicalEnd: off + int64(n), Err: errRecordChanged}
	}
	if sequential {
		f.readAhead(st, gen, k1)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// errRecordChanged: an index record read twice for one read said two
// different things (see checkRange).
var errRecordChanged = errors.New("index record changed while the block was read")

// checkSpan checks that blocks k0 and k1 hold the first and the last
// byte of logical range [lo, hi).
func (f *File) checkSpan(g geometry, k0, k1, lo, hi int64) error {
	s0, e0, err0 := f.blockRange(g, k0)
	s1, e1, err1 := f.blockRange(g, k1)
	if err := errors.Join(err0, err1); err != nil {
		return f.lookupErr(k0, err)
	}
	if k1 < k0 || s0 > lo || e0 <= lo || s1 >= hi || e1 < hi {
		return &BlockError{File: f.name, Block: k0, LogicalStart: lo, LogicalEnd: hi, Err: errRecordChanged}
	}
	return nil
}

// checkRange checks that block k, which the read reached at logical offset
// pos, holds pos (empty members aside), and that an inflated block (pin)
// is where its range says: it was read by an earlier record, or by the
// same one read again. They always agree while the File holds the lock;
// an idle File reads records another process may rewrite meanwhile
// (Index.View), and a block from one record served at another's range
// would be wrong bytes: such a read fails as a block error, and read tries
// again after a reload.
func (f *File) checkRange(g geometry, k, start, end, pos int64, pin *block) error {
	if start > pos || end < pos ||
		pin != nil && pin.start >= 0 && k < g.tailBase() && (pin.start != start || int64(len(pin.data)) != end-start) {
		return &BlockError{File: f.name, Block: k, LogicalStart: start, LogicalEnd: end, Err: errRecordChanged}
	}
	return nil
}

// blockData returns the current bytes of block k (shorter than its range
// when the rest is a hole of zeros). Bytes of an inflated block come with
// pin, a reference the caller releases once done with them (they are never
// modified meanwhile); other bytes (pin nil) may change once f.mu is
// released. Callers hold f.mu in either mode, after loadBlocks for stored
// blocks.
func (f *File) blockData(k int64) (data []byte, pin *block, err error) {
	if d, ok := f.dirty[k]; ok {
		return d, nil, nil
	}
	for _, j := range f.pending {
		if j.block == k {
			return j.data, nil, nil
		}
	}
	if k >= f.idx.Len() {
		return nil, nil, nil
	}
	if b := f.cache.get(cacheKey{f.id, k}); b != nil {
		return b.data, b, nil
	}
	b, err := f.inflate(k)
	if err != nil {
		return nil, nil, err
	}
	return b.data, b, nil
}

// needsInflate reports whether block k must be read from the backing file.
func (f *File) needsInflate(k int64) bool {
	if k >= f.idx.Len() {
		return false
	}
	if _, ok := f.dirty[k]; ok {
		return false
	}
	for _, j := range f.pending {
		if j.block == k {
			return false
		}
	}
	return !f.cache.has(cacheKey{f.id, k})
}

// loadBlocks brings the stored blocks of k0..k1 that are not at hand into
// the cache: one block is inflated inline by blockData; several go through
// the read pipeline (fetch). Callers hold f.mu.
func (f *File) loadBlocks(k0, k1 int64) error {
	todo := 0
	for k := k0; k <= k1 && todo < 2; k++ {
		if f.needsInflate(k) {
			todo++
		}
	}
	if todo <= 1 {
		return nil
	}
	return f.fetch(k0, k1, nil, 0)
}

// flight is one block being inflated; readers of the same block wait for
// it instead of inflating it again.
type flight struct {
	done    chan struct{}
	blk     *block // with a reference for each waiter
	err     error
	waiters int32 // readers waiting for blk (under flightMu, until the flight is removed)
}

// landed sets the outcome of the flight fl of block k, removing it from
// f.flights first so that no reader joins it any more, and wakes its
// waiters; b (nil on error) gets one reference per waiter.
func (f *File) landed(k int64, fl *flight, b *block, err error) {
	f.flightMu.Lock()
	if f.flights[k] == fl {
		delete(f.flights, k)
	}
	waiters := fl.waiters
	f.flightMu.Unlock()
	if b != nil {
		b.refs.Add(waiters)
	}
	fl.blk, fl.err = b, err
	close(fl.done)
}

// inflate returns stored block k, with a reference for the caller, from
// the cache, or reads, decodes and caches it, once however many readers ask
// at the same time. Callers hold f.mu (so no write can change the block
// meanwhile).
func (f *File) inflate(k int64) (*block, error) {
	f.flightMu.Lock()
	if b := f.cache.get(cacheKey{f.id, k}); b != nil {
		f.flightMu.Unlock()
		return b, nil
	}
	if fl := f.flights[k]; fl != nil {
		fl.waiters++
		f.flightMu.Unlock()
		<-fl.done
		return fl.blk, fl.err
	}
	fl := &flight{done: make(chan struct{})}
	if f.flights == nil {
		f.flights = make(map[int64]*flight)
	}
	f.flights[k] = fl
	f.flightMu.Unlock()
	b, err := f.inflateNow(k)
	f.landed(k, fl, b, err)
	return b, err
}

// inflateNow reads and decodes stored block k and caches it; the block
// comes with a reference for the caller.
func (f *File) inflateNow(k int64) (*block, error) {
	r, err := f.memberRecord(k)
	if err != nil {
		return nil, err
	}
	member := getMemberBuf()[:r.Size]
	defer putMemberBuf(member)
	buf := getBlockBuf(int(r.Length))
	data, err := f.readBlock(member, k, r, buf)
	if err != nil {
		putBlockBuf(buf)
		return nil, err
	}
	b := newBlock(data, r.Logical)
	f.cache.put(cacheKey{f.id, k}, b)
	return b, nil
}

// readBlock reads the member of block k at record r into member (r.Size
// bytes) and decodes it into dst (see decodeBlock). The error is a
// *BlockError, or the backing file's read error.
func (f *File) readBlock(member []byte, k int64, r blockindex.Record, dst []byte) ([]byte, error) {
	if _, err := f.fd.ReadAt(member, r.Offset); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, f.blockError(k, r, errPastEnd)
		}
		return nil, fmt.Errorf("%s: read block %d: %w", f.name, k, err)
	}
	data, be := f.decodeBlock(dst, k, r, member)
	if be != nil {
		return nil, be
	}
	return data, nil
}

// errPastEnd: the index places a member beyond the end of the backing file.
var errPastEnd = errors.New("member extends past the end of the backing file")

// memberRecord is the index record of stored block k for reading its
// member: a record larger than any member is a damaged stretch the index
// holds as one unreadable block.
func (f *File) memberRecord(k int64) (blockindex.Record, error) {
	r, err := f.record(k)
	if err == nil && r.Size > bgzf.MaxMemberSize {
		err = f.blockError(k, r, fmt.Errorf("damaged stretch of %d bytes", r.Size))
	}
	return r, err
}

// blockError describes a failure of block k at record r.
func (f *File) blockError(k int64, r blockindex.Record, err error) *BlockError {
	return &BlockError{File: f.name, Block: k, BackingOffset: r.Offset,
		LogicalStart: r.Logical, LogicalEnd: r.LogicalEnd(), Err: err}
}

// maxBlockNumber bounds the MTIME values decodeBlock takes for gzfs block
// numbers: other tools' BGZF members may carry a real time there (2^29
// seconds is 1987), and no gzfs file has that many blocks at the default
// block size.
const maxBlockNumber = 1 << 29

// decodeBlock inflates member, read from the backing file at record r of
// block k, into dst, and checks it against the record: BSIZE, the block
// number gzfs writes into MTIME (0 in other tools' files), CRC32 and ISIZE.
// Every way of reading a block goes through it; a failure is the
// *BlockError that says which block. A member cut short by the end of the
// backing file fails its BSIZE or CRC check.
func (f *File) decodeBlock(dst []byte, k int64, r blockindex.Record, member []byte) ([]byte, *BlockError) {
	fail := func(err error) *BlockError { return f.blockError(k, r, err) }
	data, err := bgzf.Decode(dst, member) // checks the header, BSIZE and CRC32
	if err != nil {
		return nil, fail(err)
	}
	if n := bgzf.BlockNumber(member); n != 0 && n < maxBlockNumber && n != uint32(k) && (f.blockSize == 0 || n != uint32(r.Logical/f.blockSize)) {
		// Another block's member (one that moved, read through an index
		// older than the move).
		return nil, fail(fmt.Errorf("member of block %d where the index has block %d", n, k))
	}
	if len(data) != int(r.Length) {
		return nil, fail(fmt.Errorf("holds %d bytes, index says %d", len(data), r.Length))
	}
	return data, nil
}

// backingAhead is how far ahead of a sequential reader's read-ahead the
// backing file is asked into the page cache (posix_fadvise WILLNEED: the
// kernel reads it in the background, so the pipeline's reads of it do not
// wait for the disk).
const backingAhead = 8 << 20

// prefetchBacking asks the kernel to read the backing file from the member
// of block k on, backingAhead bytes, unless an earlier call for stream st
// asked for most of that already. Callers hold f.mu in read mode.
func (f *File) prefetchBacking(st *readStream, k int64) {
	r, err := f.idx.At(min(k, f.idx.Len()-1))
	if err != nil {
		return
	}
	if done := st.prefetchedTo.Load(); r.Offset < done && done-r.Offset > backingAhead/2 && done-r.Offset <= backingAhead {
		return
	}
	st.prefetchedTo.Store(r.Offset + backingAhead)
	unix.Fadvise(int(f.fd.Fd()), r.Offset, backingAhead, unix.FADV_WILLNEED)
}

// storeMax raises a to v unless it is higher already.
func storeMax(a *atomic.Int64, v int64) {
	for s := a.Load(); v > s && !a.CompareAndSwap(s, v); s = a.Load() {
	}
}

// pastServed moves from, the first block read-ahead of stream st would
// inflate for a read that ended at block last, past the blocks already
// handed on whole (see reached): the kernel sends a sequential reader's
// requests several at a time and they are served out of order, so a later
// request may have taken them (and they left the cache); inflating them
// again would be wasted.
func (f *File) pastServed(st *readStream, from, last int64) int64 {
	to := max(from-1, st.servedTo.Load())
	for _, s := range f.servedMarks() {
		if s > to && s <= last+servedWindow {
			to = s
		}
	}
	return to + 1
}

// servedMarks returns every stream's served mark and the file's retired
// mark (see reached).
func (f *File) servedMarks() (m [readStreams + 1]int64) {
	for i := range f.streams {
		m[i] = f.streams[i].servedTo.Load()
	}
	m[readStreams] = f.retiredServed.Load()
	return m
}

// readAhead inflates the blocks after a sequential read of stream st,
// which ended at block last, in the background, unless another reader took
// the stream's place (gen) since the read began. Callers hold f.mu in read
// mode.
func (f *File) readAhead(st *readStream, gen, last int64) {
	stored := f.idx.Len()
	f.aheadMu.Lock()
	if st.gen.Load() != gen {
		f.aheadMu.Unlock()
		return
	}
	from := last + 1
	if st.aheadTo > from && st.aheadTo <= last+readAheadBlocks {
		from = st.aheadTo // the blocks before were started by an earlier read
	}
	from = f.pastServed(st, from, last)
	to := min(last+readAheadBlocks, stored-1)
	if from > to {
		f.aheadMu.Unlock()
		return
	}
	st.aheadTo = to + 1
	f.aheadMu.Unlock()
	f.prefetchBacking(st, to+1)
	f.inFlight.Add(1)
	go func() {
		defer f.inFlight.Done()
		// Lock first, then workers (taken by the stream): never hold a
		// worker while waiting for the lock (a writer may be waiting for a
		// reader that waits for a worker).
		f.mu.RLock()
		defer f.mu.RUnlock()
		if !f.closed { // fetch skips the blocks handed on meanwhile
			f.fetch(from, to, st, gen) // errors surface when the block is read
		}
	}()
}
