package blockfile

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/gzfs/gzfs/blockindex"
)

// The one read pipeline of stored blocks. Every way of reading more than
// one block goes through stream: the mount's reads of several blocks and
// its read-ahead (fetch, into the cache) and the streaming commands (cat,
// unpack: WriteRange, straight to a writer). It reads the members of a run
// of blocks with a few large sequential reads and inflates them on the
// worker pool, in parallel, handing them on in order; every block is
// decoded and checked by decodeBlock.

// streamChunk is how much of the backing file one read brings in.
const streamChunk = 4 << 20

// streamed is one block of a stream.
type streamed struct {
	chunk *[]byte // the backing bytes it was inflated from (given back once every block of it is done)
	k     int64
	rec   blockindex.Record
	data  []byte
	err   error // a *BlockError, or the backing file's read error
	done  chan struct{}
	early bool // failed before a worker took it (emitted by the consumer)
}

// stream reads the members of stored blocks k0..k1 and inflates those
// want accepts (nil: all) into buffers from alloc, calling emit for each of
// them: in block order from the calling goroutine, or, when land is set,
// from the worker that inflated it as soon as it is done (land must then be
// safe for concurrent use). emit returning an error stops the stream, and
// so does a read error of the backing file (emitted as the error of the
// block it hit). At most 4 blocks per worker are inflated ahead. Callers
// hold f.mu in either mode.
func (f *File) stream(k0, k1 int64, want func(int64) bool, alloc func(n int) []byte, emit func(*streamed) error, land bool) error {
	queue := make(chan *streamed, 4*cap(f.workers))
	stop := make(chan struct{})
	go func() { // producer: large sequential reads, parallel inflates
		defer close(queue)
		var chunk []byte
		var chunkRef *[]byte
		var chunkStart int64
		send := func(s *streamed) bool {
			select {
			case queue <- s:
				return true
			case <-stop:
				return false
			}
		}
		for k := k0; k <= k1; k++ {
			if want != nil && !want(k) {
				continue
			}
			r, err := f.memberRecord(k)
			if err == nil && (r.Offset < chunkStart || r.End() > chunkStart+int64(len(chunk))) {
				last := r
				if l, lerr := f.record(k1); lerr == nil && l.End() > r.Offset {
					last = l
				}
				chunkRef = getChunk(int(max(min(streamChunk, last.End()-r.Offset), int64(r.Size))))
				chunk = *chunkRef
				chunkStart = r.Offset
				var n int
				n, err = f.fd.ReadAt(chunk, r.Offset)
				chunk = chunk[:n]
				if err == io.EOF && r.End() > chunkStart+int64(n) {
					err = f.blockError(k, r, errPastEnd)
				} else if err == io.EOF {
					err = nil
				} else if err != nil {
					err = fmt.Errorf("%s: read: %w", f.name, err)
				}
			}
			s := &streamed{chunk: chunkRef, k: k, rec: r, err: err, done: make(chan struct{}), early: err != nil}
			if err != nil {
				close(s.done)
				send(s)
				return
			}
			if !send(s) {
				return
			}
			member := chunk[r.Offset-chunkStart : r.End()-chunkStart]
			f.workers <- struct{}{}
			go func() {
				defer close(s.done)
				defer func() { <-f.workers }()
				buf := alloc(int(r.Length))
				data, be := f.decodeBlock(buf, k, r, member)
				if be != nil {
					s.err = be
				} else {
					s.data = data
				}
				if land {
					emit(s)
				}
			}()
		}
	}()
	var err error
	var chunk *[]byte
	for s := range queue {
		<-s.done
		if s.chunk != chunk {
			// Every block of the chunk before is done (they came in order).
			putChunk(chunk)
			chunk = s.chunk
		}
		if land && s.early {
			emit(s) // no worker started for it
		}
		if err == nil && !land {
			if err = emit(s); err != nil {
				close(stop)
			}
		}
	}
	putChunk(chunk)
	return err
}

var chunkPool sync.Pool

// getChunk returns a buffer of n bytes for backing file reads.
func getChunk(n int) *[]byte {
	if p, ok := chunkPool.Get().(*[]byte); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n, max(n, 256<<10))
	return &b
}

func putChunk(p *[]byte) {
	if p != nil {
		chunkPool.Put(p)
	}
}

// fetch brings the stored blocks k0..k1 that are not at hand into the
// cache through one stream: it claims them (readers of a claimed block wait
// for it, see inflate), streams them, and waits for the blocks others are
// inflating. It returns the first error of a block of the range. Callers
// hold f.mu in either mode.
//
// A read-ahead (ahead: the stream it reads ahead of, for its reader gen;
// nil for a read) skips the blocks a reader has reached (see reached): it
// may start late (when the workers are free, or its request was served
// late), and a block a reader was handed whole meanwhile has left the
// cache, so inflating it again would leave it there unread (the daemon's
// memory then grew with the length of a sequential read, up to the cache's
// bound). It claims nothing once another reader took its stream's place.
func (f *File) fetch(k0, k1 int64, ahead *readStream, gen int64) error {
	k1 = min(k1, f.idx.Len()-1)
	var claimed map[int64]*flight // blocks this fetch inflates, until they land
	var wanted map[int64]bool     // the same, for the stream's producer (never changed)
	var others []*flight
	f.flightMu.Lock()
	for k := k0; k <= k1 && (ahead == nil || ahead.gen.Load() == gen); k++ {
		// In this order: a reader marks servedTo before it drops the
		// block from the cache, so a block found missing here that was
		// handed on is seen as handed on.
		if !f.needsInflate(k) || ahead != nil && f.reached(ahead, k) {
			continue
		}
		if fl := f.flights[k]; fl != nil {
			others = append(others, fl)
			continue
		}
		if f.flights == nil {
			f.flights = make(map[int64]*flight)
		}
		if claimed == nil {
			claimed, wanted = make(map[int64]*flight), make(map[int64]bool)
		}
		fl := &flight{done: make(chan struct{})}
		f.flights[k], claimed[k], wanted[k] = fl, fl, true
	}
	f.flightMu.Unlock()
	var first error
	if len(claimed) > 0 {
		land := func(k, start int64, data []byte, err error) {
			f.flightMu.Lock()
			fl := claimed[k]
			delete(claimed, k)
			if first == nil {
				first = err
			}
			f.flightMu.Unlock()
			if fl == nil {
				putBlockBuf(data)
				return
			}
			var b *block
			if err == nil {
				b = newBlock(data, start)
				f.cache.put(cacheKey{f.id, k}, b)
			}
			f.landed(k, fl, b, err)
			b.release() // this fetch's own reference
		}
		// Each block lands as soon as it is inflated: a reader waiting for
		// it does not wait for the blocks before it.
		f.stream(k0, k1, func(k int64) bool { return wanted[k] }, getBlockBuf,
			func(s *streamed) error {
				land(s.k, s.rec.Logical, s.data, s.err)
				return nil
			}, true)
		f.flightMu.Lock()
		var left []int64
		for k := range claimed { // a read error ended the stream early
			left = append(left, k)
		}
		f.flightMu.Unlock()
		for _, k := range left {
			land(k, 0, nil, first)
		}
	}
	for _, fl := range others {
		<-fl.done
		if first == nil {
			first = fl.err
		}
	}
	return first
}

// reached reports whether a reader got to block k before a read-ahead of
// stream st claimed it (see fetch): a block at or past k was handed on
// whole, so a request for k is in flight or done and inflates k itself.
// Every mark of st counts (a read-ahead may start long after its read); a
// mark of another stream counts when it is not far past k (a request
// served out of order can look like a stream of its own; so does the file's
// retired mark, the last of a stream whose place another reader took), but
// the marks of a reader far ahead do not: a reader far behind it still
// needs the blocks it was handed (they left the cache).
func (f *File) reached(st *readStream, k int64) bool {
	if st.servedTo.Load() >= k {
		return true
	}
	for _, s := range f.servedMarks() {
		if s >= k && s <= k+servedWindow {
			return true
		}
	}
	return false
}

// WriteTo writes the whole logical content to w (see WriteRange).
func (f *File) WriteTo(w io.Writer) (int64, error) {
	return f.WriteRange(w, 0, -1)
}

// WriteRange writes n logical bytes from off to w (n < 0: to the end),
// streaming (see stream): the blocks go to w in order, without the cache.
// It is what unpack and cat use; ReadAt is for random access.
func (f *File) WriteRange(w io.Writer, off, n int64) (int64, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return 0, os.ErrClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", f.name, off)
	}
	if n < 0 || off+n > f.size {
		n = max(f.size-off, 0)
	}
	if n == 0 {
		return 0, nil
	}
	if len(f.dirty) > 0 || len(f.pending) > 0 || off+n > f.storedLogical() || f.unlocked.Load() {
		// Unflushed data; or a file another process may change (unlocked),
		// which ReadAt reads again after a reload when a block fails.
		return f.copyByReadAt(w, off, n)
	}
	k0, err := f.idx.Find(off)
	if err != nil {
		return 0, f.lookupErr(-1, err)
	}
	k1, err := f.idx.Find(off + n - 1)
	if err != nil {
		return 0, f.lookupErr(-1, err)
	}
	var written int64
	err = f.stream(k0, k1, nil, getBlockBuf, func(s *streamed) error {
		if s.err != nil {
			return s.err
		}
		d := s.data
		lo := max(off-s.rec.Logical, 0)
		hi := min(off+n-s.rec.Logical, int64(len(d)))
		c, err := w.Write(d[lo:hi])
		written += int64(c)
		putBlockBuf(d)
		return err
	}, false)
	return written, err
}

// copyByReadAt is the WriteRange path for files with unflushed data and
// for unlocked Files.
// Callers hold f.mu for reading.
func (f *File) copyByReadAt(w io.Writer, off, n int64) (int64, error) {
	f.mu.RUnlock()
	defer f.mu.RLock()
	buf := make([]byte, 1<<20)
	var written int64
	for written < n {
		c, err := f.ReadAt(buf[:min(int64(len(buf)), n-written)], off+written)
		if c > 0 {
			if _, werr := w.Write(buf[:c]); werr != nil {
				return written, werr
			}
			written += int64(c)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return written, err
		}
	}
	return written, nil
}
