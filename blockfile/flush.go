package blockfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/gzfs/gzfs/bgzf"
	"github.com/gzfs/gzfs/blockindex"
	"golang.org/x/sys/unix"
)

// slackRound rounds the members gzfs writes up to a multiple of this many
// bytes: the padding (about 0.2% on text) lets a rewritten neighbour grow
// without moving the rest of the file.
const slackRound = 64

// rewriteSlack is the extra room, as a fraction 1/rewriteSlack of its size,
// given to a block that had to move because it outgrew its slot.
const rewriteSlack = 16

// moveWindow bounds the bytes of members moved one by one (each may give up
// its padding) after a block that outgrew its slot; past it, the rest of the
// file moves as one run, streamed through the journal.
var moveWindow int64 = 4 << 20 // a variable for tests

// appendBatch bounds the bytes gathered before one append write.
const appendBatch = 1 << 20

// Flush compresses and writes all dirty blocks to the backing file without
// fsync: after it returns the data survives a crash of this process.
func (f *File) Flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || !f.mayWrite() {
		return nil // unlocked: nothing is dirty
	}
	return f.flushLocked()
}

// Sync flushes, then makes data and index durable (fsync): after it returns
// the data survives power loss.
func (f *File) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || !f.mayWrite() {
		return nil
	}
	t, tracked := f.fd.(*changeTracker)
	var before uint64
	if tracked {
		before = t.syncs.Load()
	}
	if err := f.flushLocked(); err != nil {
		return err
	}
	// batchSynced: a journaled batch of this flush fsynced its journal and
	// then the data, and nothing was written since. The data then needs no
	// second fsync, nor the batch's retirement one of its own yet: should
	// the batch come back after power loss, its images are the data just
	// made durable. Anything else fsyncs (writes of another process while
	// this File was unlocked, metadata changed through another descriptor).
	batchSynced := tracked && !t.changed.Load() && t.syncs.Load() != before
	// The journal's emptiness first: a batch retired without fsync must not
	// come back, after power loss, over data this fsync makes durable.
	if f.jnlUnsure {
		if _, err := f.journal(); err != nil {
			return err
		}
	}
	if f.jnl != nil && f.jnl.unsynced && !batchSynced {
		if err := f.jnl.sync(); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	if !batchSynced {
		if err := f.fd.Sync(); err != nil {
			return fmt.Errorf("%s: fsync: %w", f.name, err)
		}
	}
	f.synced = f.backing
	f.idx.SetSyncedEnd(f.synced)
	f.idx.SetDirty(false)
	if err := f.idx.Sync(); err != nil {
		return fmt.Errorf("%s: %w", f.name, err)
	}
	return nil
}

// flushLocked writes every pending and dirty block. Callers hold f.mu for
// writing.
func (f *File) flushLocked() error {
	if f.broken != nil {
		return f.broken
	}
	if err := f.bgErr; err != nil {
		f.bgErr = nil
		return err
	}
	if err := f.drain(len(f.pending)); err != nil {
		return err
	}
	stored := f.idx.Len()
	g := f.geom()
	last, err := g.lastBlock(f.idx.Find)
	if err != nil {
		return f.lookupErr(-1, err)
	}
	if len(f.dirty) == 0 && last < stored && f.storedLogical() == f.size {
		// Nothing to write, even when the file lacks the EOF marker (an
		// empty .gz or a BGZF file of another tool): a read writes nothing;
		// the next append writes the marker.
		return nil
	}
	// The last stored block, if partial, grows with zeros when the file grew.
	if stored > 0 && f.size > f.storedLogical() {
		if _, ok := f.dirty[stored-1]; !ok {
			if r, err := f.record(stored - 1); err != nil {
				return err
			} else if int64(r.Length) < f.blockSize {
				d, err := f.dirtyBlock(stored-1, false)
				if err != nil {
					return err
				}
				f.dirty[stored-1] = d
			}
		}
	}
	// Every dirty block covers its whole range (holes become zeros).
	for k, d := range f.dirty {
		start, end, err := f.blockRange(g, k)
		if err != nil {
			return f.lookupErr(k, err)
		}
		if int64(len(d)) < end-start {
			f.dirty[k] = append(d, make([]byte, end-start-int64(len(d)))...)
		}
	}
	fast := f.fastTailBlock(stored, last)
	members, err := f.compressDirty(fast)
	if err != nil {
		return err
	}
	var rewrites []int64
	for k := range members {
		if k < stored {
			rewrites = append(rewrites, k)
		}
	}
	slices.Sort(rewrites)
	if len(rewrites) > 0 {
		if err := f.rewrite(rewrites, members, f.dirty); err != nil {
			return err
		}
	}
	if err := f.appendRange(stored, last, members); err != nil {
		return err
	}
	if fast >= 0 {
		f.fastTail = fast
	} else if _, ok := f.dirty[f.fastTail]; ok {
		f.fastTail = -1 // rewritten at the configured level
	}
	if f.fastTail < 0 {
		f.chunks.drop()
	}
	if d, ok := f.dirty[last]; ok && int64(len(d)) < f.blockSize {
		// The partial last block is the one the next append rewrites (a
		// log reopened per line): keep its bytes so that it is not
		// inflated again.
		b := newBlock(append(getBlockBuf(len(d)), d...), -1)
		f.cache.put(cacheKey{f.id, last}, b)
		b.release()
	}
	for k, d := range f.dirty {
		putBlockBuf(d)
		putMemberBuf(members[k].Bytes)
	}
	clear(f.dirty)
	f.account()
	if !f.eof {
		// Files end with the BGZF EOF marker, as bgzip writes them (and an
		// empty file is just the marker, so gzip tools accept it).
		return f.appendMembers(nil, nil)
	}
	return nil
}

// settleTail recompresses at the configured level a last block that an
// append left at fastLevel (see fastTailBlock). Callers hold f.mu for
// writing and flush afterwards.
func (f *File) settleTail() error {
	k := f.fastTail
	f.fastTail = -1
	if k < 0 || k != f.idx.Len()-1 || len(f.dirty) > 0 || len(f.pending) > 0 || f.storedLogical() != f.size {
		return nil // changed since: the next flush writes it at the configured level
	}
	if r, err := f.record(k); err != nil || int64(r.Length) >= f.blockSize {
		return err // filled since: the append pipeline wrote it at the configured level
	}
	d, err := f.dirtyBlock(k, false)
	if err != nil {
		return err
	}
	f.dirty[k] = d
	f.settling = true
	return nil
}

// storedLogical is the logical size the stored blocks hold.
func (f *File) storedLogical() int64 {
	n := f.idx.Len()
	if n == 0 {
		return 0
	}
	r, err := f.idx.At(n - 1)
	if err != nil {
		return -1
	}
	return r.LogicalEnd()
}

// fastLevel is the deflate level of a partial last block rewritten by an
// append (see fastTailBlock).
const fastLevel = 1

// fastTailBlock returns the block that this flush may compress at
// fastLevel, or -1: the partial last block when it was stored already, so
// that this flush rewrites it to append to it. A log reopened for every
// line (shell >>, loggers) rewrites its last block at every close; at the
// configured level that compression was most of the cost. The block gets
// the configured level once it is full (the append pipeline compresses full
// blocks) and when the File is closed (Close recompresses a fast tail), so
// the stored size of a file at rest does not change. A block written for
// the first time (a new small file) always gets the configured level.
// Callers hold f.mu for writing.
func (f *File) fastTailBlock(stored, last int64) int64 {
	if f.settling || f.encoders.Level() <= fastLevel || last >= stored {
		return -1
	}
	d, ok := f.dirty[last]
	if !ok || int64(len(d)) >= f.blockSize {
		return -1
	}
	return last
}

// tailChunk is how many appended bytes of the fast tail block are copied
// into stored blocks before they are compressed as a chunk.
const tailChunk = 2048

// maxChunkBytes bounds the memory all Files together keep in tailChunks.
const maxChunkBytes = 16 << 20

// chunkBytes is what all Files keep in tailChunks now.
var chunkBytes atomic.Int64

// tailChunks keeps, between flushes, the deflate data (bgzf.EncodeChunk) of
// the leading bytes of the fast tail block, and those bytes. A log reopened
// for every line rewrites its partial last block at every close; compressing
// the whole block again each time (at fastLevel) was most of the cost of
// such an append (a perf profile: half the daemon's CPU, for 118-byte
// lines). With the chunks, a flush compresses only whole tailChunk runs
// appended since the last one and copies the rest into stored blocks
// (bgzf.AssembleChunked). The chunks are used only while the block still
// starts with exactly the bytes they encode, so a write anywhere in the
// block never gives a member of other bytes. The block gets the configured
// level as before (full, or at Close).
type tailChunks struct {
	block int64  // the block the chunks are of; -1: none
	raw   []byte // the bytes they encode: the block's first len(raw) bytes
	body  []byte // their deflate data: non-final blocks, byte-aligned
	held  int64  // bytes counted in chunkBytes
}

// member returns the member of d, the new contents of block k, built from
// the chunks, which it extends first; false when it cannot (memory bound,
// or the member would not fit), and the caller compresses d whole.
func (c *tailChunks) member(fp *bgzf.EncoderPool, k int64, d []byte) (bgzf.Member, bool) {
	if c.block != k || len(c.raw) > len(d) || !bytes.Equal(c.raw, d[:len(c.raw)]) {
		c.drop()
		c.block = k
	}
	n := (len(d) - len(c.raw)) / tailChunk * tailChunk
	if bgzf.ChunkedMaxSize(len(c.body), n, len(d)-len(c.raw)-n) > bgzf.MaxMemberSize {
		// Blocks near 64 KiB of data that deflate barely shrinks: the
		// stored framing may not fit; compressed whole instead.
		c.drop()
		return bgzf.Member{}, false
	}
	if n > 0 {
		more := d[len(c.raw) : len(c.raw)+n]
		e := fp.Get()
		body, err := e.EncodeChunk(c.body, more)
		fp.Put(e)
		if err != nil {
			c.drop()
			return bgzf.Member{}, false
		}
		c.body, c.raw = body, append(c.raw, more...)
	}
	held := int64(cap(c.raw) + cap(c.body))
	if chunkBytes.Add(held-c.held) > maxChunkBytes {
		chunkBytes.Add(c.held - held)
		c.drop()
		return bgzf.Member{}, false
	}
	c.held = held
	m, err := bgzf.AssembleChunked(getMemberBuf(), c.body, d, len(c.raw), slackRound)
	if err != nil {
		c.drop()
		return bgzf.Member{}, false
	}
	return m, true
}

// drop forgets the chunks.
func (c *tailChunks) drop() {
	chunkBytes.Add(-c.held)
	*c = tailChunks{block: -1}
}

// compressDirty compresses every dirty block in parallel, block fast (if
// not -1) at fastLevel.
func (f *File) compressDirty(fast int64) (map[int64]bgzf.Member, error) {
	out := make(map[int64]bgzf.Member, len(f.dirty))
	jobs := make([]*job, 0, len(f.dirty)) // startJob encodes into pooled buffers
	for k, d := range f.dirty {
		if k == fast {
			fp, err := encoderPool(fastLevel)
			if err != nil {
				return nil, err
			}
			if m, ok := f.chunks.member(fp, k, d); ok {
				out[k] = m
				continue
			}
			jobs = append(jobs, f.startJobWith(fp, k, d, slackRound))
			continue
		}
		jobs = append(jobs, f.startJob(k, d, slackRound))
	}
	var errs []error
	for _, j := range jobs {
		<-j.done
		if j.err != nil {
			errs = append(errs, fmt.Errorf("%s: compress block %d: %w", f.name, j.block, j.err))
		}
		out[j.block] = j.m
	}
	return out, errors.Join(errs...)
}

// appendRange writes blocks from..to after the stored ones: their members
// from members, or zero blocks for the holes in between (a run of full zero
// blocks is written in bulk: a hole of a TiB takes seconds).
func (f *File) appendRange(from, to int64, members map[int64]bgzf.Member) error {
	var keys []int64
	for k := range members {
		if k >= from {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var batch []bgzf.Member
	var lengths []int
	var bytes int
	write := func() error {
		err := f.appendMembers(batch, lengths)
		batch, lengths, bytes = batch[:0], lengths[:0], 0
		return err
	}
	g := f.geom()
	for k := from; k <= to; k++ {
		start, end, _ := f.blockRange(g, k)
		m, ok := members[k]
		if !ok && end-start == f.blockSize {
			next, _ := slices.BinarySearch(keys, k)
			run := to + 1 - k
			if next < len(keys) {
				run = keys[next] - k
			}
			if s, e, _ := f.blockRange(g, k+run-1); e-s < f.blockSize {
				run-- // the last block of the file is partial
			}
			if run > 1 {
				if len(batch) > 0 {
					if err := write(); err != nil {
						return err
					}
				}
				if err := f.appendZeros(run); err != nil {
					return err
				}
				k += run - 1
				continue
			}
		}
		if !ok {
			var err error
			if m, err = f.zeroMember(int(end - start)); err != nil {
				return err
			}
		}
		batch = append(batch, m)
		lengths = append(lengths, int(end-start))
		bytes += len(m.Bytes)
		if bytes >= appendBatch || k == to {
			if err := write(); err != nil {
				return err
			}
		}
	}
	return nil
}

// appendZeros appends n full blocks of zeros, about 1 MiB of members per
// write, each write followed by the EOF marker (as appendMembers does).
func (f *File) appendZeros(n int64) error {
	z, err := f.zeroMember(int(f.blockSize))
	if err != nil {
		return err
	}
	zl := int64(len(z.Bytes))
	per := max(appendBatch/zl, 1)
	buf := make([]byte, 0, min(per, n)*zl+int64(len(bgzf.EOFMember)))
	for i := int64(0); i < min(per, n); i++ {
		buf = append(buf, z.Bytes...)
	}
	for n > 0 {
		c := min(n, per)
		for i := int64(0); i < c; i++ {
			f.number(buf[i*zl:], f.idx.Len()+i)
		}
		chunk := append(buf[:c*zl], bgzf.EOFMember...) // c < per only in the last round
		if err := f.idx.Reserve(c); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		f.idx.SetDirty(true)
		if _, err := f.fd.WriteAt(chunk, f.backing); err != nil {
			return f.undoAppend(fmt.Errorf("%s: append zero blocks: %w", f.name, err))
		}
		f.eof = true
		rec := blockindex.Record{Offset: f.backing, Logical: f.storedLogical(), Size: uint32(zl),
			Length: uint32(f.blockSize), Pad: padField(z)}
		if err := f.idx.AppendRun(c, rec); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		f.backing += c * zl
		f.idx.SetState(f.storedLogical(), f.physical(), binary.LittleEndian.Uint64(z.Bytes[zl-8:]))
		n -= c
		if err := f.spillIndex(); err != nil {
			return err
		}
	}
	return nil
}

// zeroMember returns a member of n zero bytes. Members of a whole block of
// zeros are compressed once per level and block size for the process
// (every new file asks for one: the space check of its first write).
func (f *File) zeroMember(n int) (bgzf.Member, error) {
	key := zeroKey{f.encoders.Level(), n}
	full := n == int(f.blockSize)
	if full {
		if m, ok := zeroMembers.Load(key); ok {
			return m.(bgzf.Member), nil
		}
	}
	e := f.encoders.Get()
	defer f.encoders.Put(e)
	m, err := e.Encode(nil, make([]byte, n), 0)
	if err != nil {
		return m, fmt.Errorf("%s: compress zeros: %w", f.name, err)
	}
	if full {
		zeroMembers.Store(key, m)
	}
	return m, nil
}

// zeroKey names a cached member of zeros: level and length.
type zeroKey struct{ level, n int }

// zeroMembers caches full blocks of zeros, compressed (zeroKey -> bgzf.Member;
// the members are shared and never modified).
var zeroMembers sync.Map

// appendMembers writes members after the last data member, over the EOF
// marker, and a new EOF marker after them (no journal needed: the marker
// holds no data, and a torn tail is cut back at the next open). Then it
// records them.
func (f *File) appendMembers(ms []bgzf.Member, lengths []int) error {
	n := len(bgzf.EOFMember)
	for _, m := range ms {
		n += len(m.Bytes)
	}
	if cap(f.appendBuf) < n {
		f.appendBuf = make([]byte, 0, n)
	}
	buf := f.appendBuf[:0]
	for i, m := range ms {
		buf = append(buf, m.Bytes...)
		f.number(buf[len(buf)-len(m.Bytes):], f.idx.Len()+int64(i))
	}
	buf = append(buf, bgzf.EOFMember...)
	if err := f.idx.Reserve(int64(len(ms))); err != nil {
		return fmt.Errorf("%s: %w", f.name, err)
	}
	f.idx.SetDirty(true)
	if _, err := f.fd.WriteAt(buf, f.backing); err != nil {
		return f.undoAppend(fmt.Errorf("%s: append: %w", f.name, err))
	}
	f.eof = true
	logical := f.storedLogical()
	off := f.backing
	for i, m := range ms {
		rec := blockindex.Record{Offset: off, Logical: logical, Size: uint32(len(m.Bytes)),
			Length: uint32(lengths[i]), Pad: padField(m)}
		if err := f.idx.Set(f.idx.Len(), rec); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		off += int64(len(m.Bytes))
		logical += int64(lengths[i])
	}
	f.backing = off
	if len(ms) == 0 {
		return f.saveState()
	}
	last := ms[len(ms)-1].Bytes
	f.idx.SetState(logical, f.physical(), binary.LittleEndian.Uint64(last[len(last)-8:]))
	return f.spillIndex()
}

// undoAppend cuts a failed append (a full disk: part of it may be written)
// back to the last recorded member and puts the EOF marker after it again,
// so that the backing file stays a valid gzip stream of what the index
// says. It returns err.
func (f *File) undoAppend(err error) error {
	if terr := f.fd.Truncate(f.backing); terr != nil {
		f.log.Error("cutting a failed append", "file", f.name, "err", terr)
		return err
	}
	if _, werr := f.fd.WriteAt(bgzf.EOFMember, f.backing); werr != nil {
		f.log.Error("rewriting the EOF marker after a failed append", "file", f.name, "err", werr)
		f.eof = false
		return err
	}
	f.eof = true
	return err
}

// saveState records the backing size, logical size and tail in the index.
func (f *File) saveState() error {
	tail, err := f.tailCheck(f.backing)
	if err != nil {
		return fmt.Errorf("%s: %w", f.name, err)
	}
	f.idx.SetState(f.storedLogical(), f.physical(), tail)
	return nil
}

// rewrite replaces the stored blocks ks (ascending) with new members. A
// member that fits its old slot is padded to fill it exactly; one that does
// not pushes the members after it, which give up their padding until the
// growth is absorbed (or the file end is reached). The whole batch goes
// through the journal, so a crash leaves either the old or the new bytes.
func (f *File) rewrite(ks []int64, members map[int64]bgzf.Member, data map[int64][]byte) error {
	stored := f.idx.Len()
	if ks[0] < stored-1 {
		if err := f.markDirtyInPlace(); err != nil {
			return err
		}
	}
	var writes []extent
	var recs []blockindex.Record
	var recNums []int64
	shift := int64(0)
	moved := int64(0)
	tailFrom := stored // blocks from here on move verbatim by shift
	i := 0
	for k := ks[0]; k < stored; k++ {
		r, err := f.record(k)
		if err != nil {
			return err
		}
		start := r.Offset + shift
		var out bgzf.Member
		switch {
		case i < len(ks) && ks[i] == k:
			if err := f.checkSlot(k, r); err != nil {
				return err
			}
			if out, err = f.placeMember(members[k], data[k], r.End()-start, k == stored-1); err != nil {
				return fmt.Errorf("%s: block %d: %w", f.name, k, err)
			}
			shift = start + int64(len(out.Bytes)) - r.End()
			i++
		case shift > 0 && moved > moveWindow && i == len(ks):
			if err := f.checkSlot(k, r); err != nil {
				return err
			}
			tailFrom = k
			writes = appendMove(writes, r.Offset+shift, r.Offset, f.backing-r.Offset)
		case shift > 0:
			moved += int64(r.Size)
			if out, err = f.moveMember(k, r, shift); err != nil {
				return err
			}
			shift -= int64(r.Size) - int64(len(out.Bytes))
		default:
			k = ks[i] - 1 // nothing moves here: skip to the next rewritten block
			continue
		}
		if tailFrom < stored {
			break
		}
		f.number(out.Bytes, k)
		writes = append(writes, extent{off: start, data: out.Bytes})
		_, isize := bgzf.Trailer(out.Bytes)
		recs = append(recs, blockindex.Record{Offset: start, Logical: r.Logical,
			Size: uint32(len(out.Bytes)), Length: isize, Pad: padField(out)})
		recNums = append(recNums, k)
		if shift == 0 && i == len(ks) {
			break
		}
	}
	dataEnd := f.backing + shift
	writes = append(writes, extent{off: dataEnd, data: bgzf.EOFMember})
	if err := f.commitBatch(dataEnd+int64(len(bgzf.EOFMember)), writes); err != nil {
		return err
	}
	f.eof = true
	for n, k := range recNums {
		if err := f.idx.Set(k, recs[n]); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		f.cache.drop(cacheKey{f.id, k})
	}
	for k := tailFrom; k < stored; k++ {
		r, err := f.record(k)
		if err != nil {
			return err
		}
		r.Offset += shift
		if err := f.idx.Set(k, r); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	f.backing = dataEnd
	if f.jnl.durable {
		// The batch fsynced the file: durable data may now lie anywhere up
		// to the data end (members of fsynced blocks moved there).
		f.synced = f.backing
		f.idx.SetSyncedEnd(f.synced)
	}
	if err := f.saveState(); err != nil {
		return err
	}
	return f.retire()
}

// maxExtent bounds one journal entry: its length field is 32 bits, and a
// tail moved in a file of up to 16 TiB may be longer than 4 GiB (one
// longer entry corrupted the journal: the file could not be opened).
var maxExtent int64 = 1 << 30 // a variable for tests

// appendMove appends the move of n backing bytes from src to dst as
// extents of at most maxExtent bytes (the journal holds a copy of each
// source, so their order does not matter).
func appendMove(writes []extent, dst, src, n int64) []extent {
	for p := int64(0); p < n; p += maxExtent {
		writes = append(writes, extent{off: dst + p, src: src + p, n: min(maxExtent, n-p)})
	}
	return writes
}

// moveMember reads stored block k to move it by shift bytes, shrinking its
// padding by up to shift bytes.
func (f *File) moveMember(k int64, r blockindex.Record, shift int64) (bgzf.Member, error) {
	b := make([]byte, r.Size)
	if _, err := f.fd.ReadAt(b, r.Offset); err != nil {
		return bgzf.Member{}, fmt.Errorf("%s: read block %d to move it: %w", f.name, k, err)
	}
	if err := headerOfSize(b, int(r.Size)); err != nil {
		return bgzf.Member{}, &BlockError{File: f.name, Block: k, BackingOffset: r.Offset,
			LogicalStart: r.Logical, LogicalEnd: r.LogicalEnd(), Err: err}
	}
	m := memberOf(b, r.Pad)
	// Give up as much padding as the shift needs, or the most below that
	// the padding can be cut to (not every prefix length exists).
	for take := min(int64(bgzf.Slack(m)), shift); take > 0; take-- {
		if out, err := bgzf.Repad(nil, m, int(int64(r.Size)-take)); err == nil {
			return out, nil
		}
	}
	return m, nil // no padding to give: it moves as it is
}

// checkSlot makes sure that the slot of block k is where its record says
// before a batch writes over it or moves the file's tail from there
// (moveMember checks the members it reads itself). An index older than the
// file still matches its size and tail when a power loss kept the file's
// pages of an in-place rewrite but not the index's; written through, its
// record would put the block onto its neighbour. So the member there must
// have the recorded BSIZE, or, the block being damaged (a whole write
// repairs it), the stored members before and after it must be where and
// what the index says, right against its slot. Otherwise the write fails
// (EIO), the index stays marked dirty, and the next open rebuilds it.
func (f *File) checkSlot(k int64, r blockindex.Record) error {
	if r.Size == 0 {
		return nil // a gap: nothing stored to check
	}
	err := f.memberAt(r.Offset, int(r.Size))
	if err == nil || f.neighboursHold(k, r) {
		return nil
	}
	return &BlockError{File: f.name, Block: k, BackingOffset: r.Offset,
		LogicalStart: r.Logical, LogicalEnd: r.LogicalEnd(), Err: fmt.Errorf("before a rewrite: %w", err)}
}

// neighboursHold reports whether the stored members next to block k (gaps
// skipped) are where and what the index says, against k's slot r.
func (f *File) neighboursHold(k int64, r blockindex.Record) bool {
	for i := k - 1; i >= 0; i-- {
		p, err := f.record(i)
		if err != nil {
			return false
		}
		if p.Size == 0 {
			continue
		}
		if p.End() != r.Offset || f.memberAt(p.Offset, int(p.Size)) != nil {
			return false
		}
		break
	}
	for j := k + 1; j < f.idx.Len(); j++ {
		n, err := f.record(j)
		if err != nil {
			return false
		}
		if n.Size == 0 {
			continue
		}
		return n.Offset == r.End() && f.memberAt(n.Offset, int(n.Size)) == nil
	}
	return r.End() == f.backing
}

// memberAt reports whether a member header of size bytes starts at off.
func (f *File) memberAt(off int64, size int) error {
	var b [bgzf.HeaderSize]byte
	if _, err := f.fd.ReadAt(b[:], off); err != nil {
		return err
	}
	return headerOfSize(b[:], size)
}

// headerOfSize reports whether b starts with a member header whose BSIZE
// says size bytes, as the index records.
func headerOfSize(b []byte, size int) error {
	h, err := bgzf.ParseHeader(b)
	if err == nil && h.Size != size {
		err = fmt.Errorf("member size %d, index says %d", h.Size, size)
	}
	return err
}

// journal returns the File's write journal, opened on first use. One found
// empty at open (jnlUnsure) counts as retired without fsync: the next Sync
// fsyncs it before the data.
func (f *File) journal() (*journal, error) {
	if f.jnl == nil {
		j, err := openJournal(f.store.journalPath(f.fid.Ino))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		j.unsynced = f.jnlUnsure
		f.jnl = j
	}
	f.jnlUnsure = false
	return f.jnl, nil
}

// commitBatch writes a batch of in-place writes through the journal.
func (f *File) commitBatch(finalSize int64, writes []extent) error {
	f.idx.SetDirty(true)
	if _, err := f.journal(); err != nil {
		return err
	}
	// Room for a growing batch is taken first: a full disk fails here,
	// before anything in the backing file changed.
	if grow := finalSize - f.physical(); grow > 0 {
		err := unix.Fallocate(int(f.fd.Fd()), unix.FALLOC_FL_KEEP_SIZE, f.physical(), grow)
		if err != nil && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("%s: reserve %d bytes for a rewrite: %w", f.name, grow, err)
		}
	}
	// Only a batch that overwrites bytes an fsync made durable needs fsyncs
	// of its own (see journal.durable).
	f.jnl.durable = false
	for _, w := range writes {
		if w.off < f.synced {
			f.jnl.durable = true
			break
		}
	}
	if err := f.jnl.commit(f.fid, finalSize, writes, f.fd); err != nil {
		if rerr := f.jnl.retire(); rerr != nil { // a torn journal: give its space back
			f.log.Error("emptying a torn journal", "file", f.name, "err", rerr)
		}
		return fmt.Errorf("%s: %w", f.name, err)
	}
	inMemory := true
	for _, w := range writes {
		inMemory = inMemory && w.data != nil
	}
	var err error
	if inMemory {
		err = f.jnl.applyFromMemory(f.fd, writes, finalSize)
	} else {
		// Moves within the backing file: their sources may be overwritten
		// by the batch itself, so they are copied from the journal.
		err = f.jnl.apply(f.fd, batch{start: journalHeader, count: uint32(len(writes)), finalSize: finalSize})
	}
	if err != nil {
		// Half applied: only a replay of the journal (at the next open)
		// makes the backing file whole again; until then this File fails.
		err = fmt.Errorf("%s: %w", f.name, err)
		f.broken = fmt.Errorf("%s: a rewrite could not be applied; the next open replays it from the journal (%v): %w", f.name, err, syscall.EIO)
		return err
	}
	return nil
}

// retire empties the journal after its batch is applied and recorded.
func (f *File) retire() error {
	if err := f.jnl.retire(); err != nil {
		return fmt.Errorf("%s: %w", f.name, err)
	}
	return nil
}

// placeMember sizes the new member of a rewritten block whose old slot has
// avail bytes left: it fills the slot exactly when it fits (nothing after it
// moves), or takes its size plus 1/rewriteSlack of slack when it does not.
// The last block of the file keeps its own size. A member whose padding
// cannot take the size needed is re-encoded in the flexible form.
func (f *File) placeMember(m bgzf.Member, data []byte, avail int64, last bool) (bgzf.Member, error) {
	if last {
		return m, nil
	}
	if int64(len(m.Bytes)) <= avail {
		out, err := bgzf.Repad(nil, m, int(avail))
		if !errors.Is(err, bgzf.ErrCannotRepad) {
			return out, err
		}
		if m, err = f.encodeFlexible(data); err != nil {
			return m, err
		}
		if int64(len(m.Bytes)) <= avail {
			return bgzf.Repad(nil, m, int(avail))
		}
	}
	size := int64(len(m.Bytes))
	target := min(size+size/rewriteSlack+slackRound-1, bgzf.MaxMemberSize) / slackRound * slackRound
	for t := max(target, size); t <= bgzf.MaxMemberSize; t++ {
		if out, err := bgzf.Repad(nil, m, int(t)); err == nil {
			return out, nil
		}
	}
	return m, nil // no slack possible: take the member as it is
}

// encodeFlexible compresses a block in the form any size can be padded to.
func (f *File) encodeFlexible(data []byte) (bgzf.Member, error) {
	e := f.encoders.Get()
	defer f.encoders.Put(e)
	return e.EncodeFlexible(nil, data, 0)
}

// padField is how a member's padding is recorded in the index.
func padField(m bgzf.Member) uint32 {
	if m.Prefixed {
		return 1<<31 | uint32(m.PrefixLen)
	}
	return uint32(m.TermLen)
}

// memberOf makes a Member of stored bytes and their recorded padding.
func memberOf(b []byte, pad uint32) bgzf.Member {
	if pad&(1<<31) != 0 {
		return bgzf.Member{Bytes: b, Prefixed: true, PrefixLen: int(pad &^ (1 << 31))}
	}
	return bgzf.Member{Bytes: b, TermLen: int(pad)}
}

// number writes block number k into a member gzfs writes (see
// bgzf.SetBlockNumber), in a uniform file only: a rebuild places a
// numbered member at k*BlockSize, which is where block k starts only when
// every block before it holds BlockSize bytes. In another tool's BGZF of
// uneven blocks the members stay unnumbered (MTIME 0), as its own are.
func (f *File) number(member []byte, k int64) {
	if f.idx.Uniform() {
		bgzf.SetBlockNumber(member, k)
	}
}
