package blockfile

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gzfs/gzfs/bgzf"
)

// job compresses one block in the background.
type job struct {
	block int64
	data  []byte
	done  chan struct{}
	m     bgzf.Member
	err   error
}

// finished reports whether the job is done, without waiting.
func (j *job) finished() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

// startJob compresses data on the worker pool. roundTo > 1 leaves slack.
func (f *File) startJob(k int64, data []byte, roundTo int) *job {
	return f.startJobWith(f.encoders, k, data, roundTo)
}

// startJobWith is startJob with the encoders of a given level. It does not
// wait for a worker: the job does (so a writer goes on copying the next
// blocks while the pool compresses; queueFullBlocks bounds the queue).
func (f *File) startJobWith(encoders *bgzf.EncoderPool, k int64, data []byte, roundTo int) *job {
	j := &job{block: k, data: data, done: make(chan struct{})}
	go func() {
		defer close(j.done)
		f.workers <- struct{}{}
		defer func() { <-f.workers }()
		e := encoders.Get()
		defer encoders.Put(e)
		j.m, j.err = e.Encode(getMemberBuf(), data, roundTo)
	}()
	return j
}

// WriteAt writes p at logical offset off, growing the file (with zeros in any
// gap) when off+len(p) > Size().
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", f.name, off)
	}
	f.mu.Lock()
	if err := f.writable(); err != nil {
		f.mu.Unlock()
		return 0, err
	}
	p, err := f.clipWrite(p, off)
	if err == nil {
		err = f.bgErr // blocks taken before could not be written out
	}
	if err == nil {
		err = f.writeLocked(p, off)
	}
	if err != nil {
		f.mu.Unlock()
		return 0, err
	}
	return len(p), f.backPressure()
}

// backPressure makes a writer that queued more than maxPending blocks wait
// for the oldest without holding f.mu (readers, stat and the flush timer go
// on meanwhile), then writes the blocks that are done. Callers hold f.mu
// for writing; it is released.
func (f *File) backPressure() error {
	if len(f.pending) <= maxPending {
		f.mu.Unlock()
		return nil
	}
	oldest := f.pending[0]
	f.mu.Unlock()
	<-oldest.done
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	defer f.account()
	if err := f.drain(0); err != nil {
		f.deferErr(err) // the write that waited here took effect
	}
	return nil
}

// clipWrite applies MaxFileSize to a write of p at off, as local
// filesystems do: EFBIG when off is at or past it, else the part of p below
// it.
func (f *File) clipWrite(p []byte, off int64) ([]byte, error) {
	if len(p) == 0 {
		return p, nil
	}
	if off >= MaxFileSize {
		return nil, fmt.Errorf("%s: write at %d: the maximum file size is %d bytes: %w", f.name, off, MaxFileSize, syscall.EFBIG)
	}
	return p[:min(int64(len(p)), MaxFileSize-off)], nil
}

// Append writes p at the current end of the file atomically with respect to
// other writers and returns the offset it was written at (O_APPEND).
func (f *File) Append(p []byte) (int64, error) {
	f.mu.Lock()
	if err := f.writable(); err != nil {
		f.mu.Unlock()
		return 0, err
	}
	off := f.size
	if off+int64(len(p)) > MaxFileSize { // no short count: all of p or nothing
		f.mu.Unlock()
		return off, fmt.Errorf("%s: append at %d: the maximum file size is %d bytes: %w", f.name, off, MaxFileSize, syscall.EFBIG)
	}
	err := f.bgErr // blocks taken before could not be written out
	if err == nil {
		err = f.writeLocked(p, off)
	}
	if err != nil {
		f.mu.Unlock()
		return off, err
	}
	return off, f.backPressure()
}

func (f *File) writable() error {
	if f.closed {
		return os.ErrClosed
	}
	if f.broken != nil {
		return f.broken
	}
	if f.opts.ReadOnly {
		return fmt.Errorf("%s: %w", f.name, ErrReadOnly)
	}
	return f.lockLocked() // an unlocked File takes the lock for its first change
}

func (f *File) writeLocked(p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	end := off + int64(len(p))
	if end > f.size {
		if err := f.checkGrowth(end); err != nil {
			return err
		}
	}
	g := f.geom()
	g.size = max(f.size, end)
	k0, err := g.blockOf(off, f.idx.Find)
	if err != nil {
		return f.lookupErr(-1, err)
	}
	k1, err := g.blockOf(end-1, f.idx.Find)
	if err != nil {
		return f.lookupErr(-1, err)
	}
	for k := k0; k <= k1; k++ {
		start, bend, err := f.blockRange(g, k)
		if err != nil {
			return f.lookupErr(k, err)
		}
		from, to := max(off, start), min(end, bend)
		buf, err := f.dirtyBlock(k, from == start && to == bend)
		if err != nil {
			return err
		}
		if need := int(to - start); len(buf) < need {
			buf = append(buf, make([]byte, need-len(buf))...)
		}
		copy(buf[from-start:], p[from-off:to-off])
		f.dirty[k] = buf
	}
	f.size = max(f.size, end)
	// The bytes are taken: they are in memory and will be written. An
	// error writing blocks out from here on is not this write's (it took
	// effect; a caller told otherwise would write it again): it is
	// reported by the next write, Flush, Sync or Close, as the kernel
	// reports a failed writeback.
	if err := f.queueFullBlocks(); err != nil {
		f.deferErr(err)
	}
	f.account()
	if f.bgErr == nil && (len(f.dirty) > maxDirtyBlocks || heldBlocks.Load() > maxHeldBlocks && len(f.dirty) > 1) {
		if err := f.flushLocked(); err != nil {
			f.deferErr(err)
		}
	}
	f.armTimer()
	return nil
}

// deferErr keeps the first error of writing out blocks that writes had
// already taken, for the next write, Flush, Sync or Close to report.
// Callers hold f.mu for writing.
func (f *File) deferErr(err error) {
	if f.bgErr == nil {
		f.bgErr = err
		f.log.Warn("writing blocks out failed; the next write, flush or close reports it", "file", f.name, "err", err)
	}
}

// account updates the process-wide count of blocks held in memory with this
// File's current share. Callers hold f.mu for writing.
func (f *File) account() {
	n := int64(len(f.dirty) + len(f.pending))
	if f.closed {
		n = 0
	}
	heldBlocks.Add(n - f.held)
	f.held = n
	f.promise()
}

// dirtyBlock returns the in-memory copy of block k to modify, loading it
// from the backing file unless the caller overwrites all of it. Callers hold
// f.mu for writing.
func (f *File) dirtyBlock(k int64, whole bool) ([]byte, error) {
	if d, ok := f.dirty[k]; ok {
		return d, nil
	}
	if slices.ContainsFunc(f.pending, func(j *job) bool { return j.block == k }) {
		if err := f.drain(len(f.pending)); err != nil {
			return nil, err
		}
	}
	buf := getBlockBuf(int(f.blockSize))
	if k < f.idx.Len() && !whole {
		data, pin, err := f.blockData(k)
		if err != nil {
			return nil, err
		}
		buf = append(buf, data...)
		pin.release()
	}
	f.idx.SetDirty(true)
	return buf, nil
}

// appendBase is the first block that is not stored full: the next one the
// pipeline may compress. Callers hold f.mu.
func (f *File) appendBase() int64 {
	n := f.idx.Len()
	if n > 0 {
		if r, err := f.idx.At(n - 1); err == nil && int64(r.Length) < f.blockSize {
			return n - 1
		}
	}
	return n
}

// queueFullBlocks hands full blocks at the end of the file to the
// compression pool as soon as they are complete (pigz-style pipelining), and
// writes finished ones in order. Callers hold f.mu for writing.
func (f *File) queueFullBlocks() error {
	for {
		k := f.appendBase() + int64(len(f.pending))
		buf, ok := f.dirty[k]
		if !ok || int64(len(buf)) < f.blockSize {
			return nil
		}
		delete(f.dirty, k)
		f.pending = append(f.pending, f.startJob(k, buf, slackRound))
		if len(f.pending) > 2*maxPending { // one huge write: bounded all the same
			if err := f.drain(1); err != nil {
				return err
			}
		}
	}
}

// maxPending is how many full blocks of one File a write leaves queued for
// compression (about 1.5 MiB; see backPressure): deep enough that the pool
// is still busy when a writer through the mount comes back with its next
// request (the kernel sends one write at a time). Within one write the
// queue may hold twice as many.
const maxPending = 24

// drain waits for the first n pending jobs and writes their members; jobs
// after them that are already done are written too. Consecutive appends go
// out in one write (one round trip on a network filesystem, not one per
// block).
func (f *File) drain(n int) error {
	for len(f.pending) > 0 {
		j := f.pending[0]
		if n <= 0 && !j.finished() {
			return nil
		}
		<-j.done
		if j.err != nil {
			return fmt.Errorf("%s: compress block %d: %w", f.name, j.block, j.err)
		}
		if j.block < f.idx.Len() {
			if err := f.rewrite([]int64{j.block}, map[int64]bgzf.Member{j.block: j.m}, map[int64][]byte{j.block: j.data}); err != nil {
				return err
			}
			f.retirePending(1)
			n--
			continue
		}
		// A run of finished appends (the first n are waited for).
		run := 1
		for run < len(f.pending) && run < maxAppendRun {
			next := f.pending[run]
			if run >= n && !next.finished() {
				break
			}
			<-next.done
			if next.err != nil {
				break // reported when it comes first
			}
			run++
		}
		ms := make([]bgzf.Member, run)
		lengths := make([]int, run)
		for i, j := range f.pending[:run] {
			ms[i], lengths[i] = j.m, len(j.data)
		}
		if err := f.appendMembers(ms, lengths); err != nil {
			return err
		}
		f.retirePending(run)
		n -= run
	}
	return nil
}

// maxAppendRun bounds the members one drain writes at once.
const maxAppendRun = 64

// retirePending drops the first n pending jobs, written: no reader can hold their
// buffers now (drain runs under the write lock).
func (f *File) retirePending(n int) {
	for _, j := range f.pending[:n] {
		putBlockBuf(j.data)
		putMemberBuf(j.m.Bytes)
	}
	f.pending = f.pending[n:]
}

// armTimer schedules a background flush of the growing tail.
func (f *File) armTimer() {
	if f.opts.FlushInterval <= 0 || f.timer != nil {
		return
	}
	f.timer = time.AfterFunc(f.opts.FlushInterval, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.timer = nil
		if f.closed || !f.mayWrite() { // unlocked since (Idle): nothing is dirty
			return
		}
		if err := f.flushLocked(); err != nil {
			f.bgErr = err
			f.log.Error("background flush failed", "file", f.name, "err", err)
		}
	})
}

// Truncate changes the logical size; growth reads as zeros.
func (f *File) Truncate(size int64) error {
	if size < 0 {
		return fmt.Errorf("%s: negative size %d", f.name, size)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.writable(); err != nil {
		return err
	}
	defer f.account()
	if size >= f.size {
		return f.growLocked(size)
	}
	if err := f.drain(len(f.pending)); err != nil {
		return err
	}
	f.idx.SetDirty(true)
	g := f.geom()
	g.size = size
	last := int64(-1)
	if size > 0 {
		var err error
		if last, err = g.blockOf(size-1, f.idx.Find); err != nil {
			return f.lookupErr(-1, err)
		}
	}
	for k, d := range f.dirty {
		start, _, err := f.blockRange(g, k)
		switch {
		case err != nil:
			return f.lookupErr(k, err)
		case k > last:
			delete(f.dirty, k)
		case k == last && int64(len(d)) > size-start:
			f.dirty[k] = d[:size-start]
		}
	}
	stored := f.idx.Len()
	if last >= stored-1 {
		f.size = size
		if last >= 0 && last == stored-1 {
			if r, err := f.record(last); err != nil {
				return err
			} else if r.LogicalEnd() > size {
				return f.cutStored(last, size)
			}
		}
		return nil
	}
	return f.cutStored(last, size)
}

// Grow extends the file to size with zeros, like a growing Truncate; a
// file already that long is left as it is (fallocate).
func (f *File) Grow(size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.writable(); err != nil {
		return err
	}
	defer f.account()
	return f.growLocked(max(size, f.size))
}

// growLocked sets a logical size of at least f.size: EFBIG past
// MaxFileSize, ENOSPC when the zero fill cannot fit. Callers hold f.mu for
// writing.
func (f *File) growLocked(size int64) error {
	if size > MaxFileSize {
		return fmt.Errorf("%s: truncate to %d: the maximum file size is %d bytes: %w", f.name, size, MaxFileSize, syscall.EFBIG)
	}
	if size == f.size {
		return nil
	}
	if err := f.checkGrowth(size); err != nil {
		return err
	}
	f.size = size
	f.idx.SetDirty(true)
	f.armTimer()
	return nil
}

// cutStored drops the stored blocks after last and cuts block last at the
// logical size, rewriting it. Callers hold f.mu for writing.
func (f *File) cutStored(last, size int64) error {
	if last >= 0 {
		r, err := f.record(last)
		if err != nil {
			return err
		}
		if keep := min(int64(r.Length), size-r.Logical); r.Size <= bgzf.MaxMemberSize && keep > f.blockSize {
			// Block last becomes the last stored block, which the geometry
			// lays out BlockSize bytes long: another tool's block longer
			// than that, of which more than BlockSize bytes stay, raises the
			// block size (see fitBlockSize).
			f.blockSize = keep
			f.idx.SetBlockSize(int(keep))
		}
		if _, ok := f.dirty[last]; !ok && r.LogicalEnd() > size {
			data, pin, err := f.blockData(last)
			if err != nil {
				return err
			}
			f.dirty[last] = append(make([]byte, 0, f.blockSize), data[:size-r.Logical]...)
			pin.release()
		}
		f.backing = r.End()
	} else {
		f.backing = 0
	}
	for k := last + 1; k < f.idx.Len(); k++ {
		f.cache.drop(cacheKey{f.id, k})
	}
	f.idx.Truncate(last + 1)
	f.size = size
	if _, ok := f.dirty[last]; ok {
		return f.flushLocked() // rewrites the cut block and sets the file size, journaled
	}
	if f.backing == 0 {
		// Cut to nothing (O_TRUNC): the size first, then the marker, which
		// then lands in a newly allocated block; no crash can leave the
		// old size with the marker over the first member. In between the
		// file is empty, which gzfs reads as an empty file and the next
		// write completes; no journal, so no fsync for every overwrite.
		if err := f.fd.Truncate(0); err != nil {
			return fmt.Errorf("%s: truncate: %w", f.name, err)
		}
		f.eof = false
		if _, err := f.fd.WriteAt(bgzf.EOFMember, 0); err != nil {
			return fmt.Errorf("%s: truncate: %w", f.name, err)
		}
		f.eof = true
		return f.saveState()
	}
	// Cut after the last kept member: the marker lands on the start of the
	// next member, so it goes through the journal with the new size, as
	// any in-place rewrite (a crash between the two left a file that was
	// neither the old nor the new one, and not gzip).
	if err := f.commitBatch(f.backing+int64(len(bgzf.EOFMember)), []extent{{off: f.backing, data: bgzf.EOFMember}}); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	f.eof = true
	if err := f.saveState(); err != nil {
		return err
	}
	return f.retire()
}

// Buffers of blocks and members are recycled: a sequential writer would
// otherwise allocate (and clear) two 64 KiB buffers per block.
var (
	blockBufPool  sync.Pool
	memberBufPool sync.Pool
)

// getBlockBuf returns an empty buffer with room for a block of n bytes.
func getBlockBuf(n int) []byte {
	if p, ok := blockBufPool.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, max(n, 1))
}

func putBlockBuf(b []byte) {
	if cap(b) >= MinBlockSize {
		blockBufPool.Put(&b)
	}
}

// getMemberBuf returns an empty buffer with room for any member.
func getMemberBuf() []byte {
	if p, ok := memberBufPool.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, bgzf.MaxMemberSize)
}

func putMemberBuf(b []byte) {
	if cap(b) == bgzf.MaxMemberSize {
		memberBufPool.Put(&b)
	}
}
