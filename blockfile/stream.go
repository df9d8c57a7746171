package blockfile

import (
	"fmt"
	"io"
	"os"

	"github.com/gzfs/gzfs/bgzf"
	"github.com/gzfs/gzfs/blockindex"
)

// streamChunk is how much of the backing file one read brings in when
// streaming.
const streamChunk = 4 << 20

// WriteTo writes the whole logical content to w (see WriteRange).
func (f *File) WriteTo(w io.Writer) (int64, error) {
	return f.WriteRange(w, 0, -1)
}

// WriteRange writes n logical bytes from off to w (n < 0: to the end),
// streaming: the backing file is read in large sequential chunks and the
// blocks inflate in parallel, in order, without going through the cache.
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
	if len(f.dirty) > 0 || len(f.pending) > 0 || off+n > f.storedLogical() {
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

	type result struct {
		k    int64
		rec  blockindex.Record
		data []byte
		err  *BlockError
		done chan struct{}
	}
	queue := make(chan *result, 4*cap(f.workers))
	stop := make(chan struct{})
	var readErr error
	go func() { // producer: sequential chunked reads, parallel inflates
		defer close(queue)
		var chunk []byte
		var chunkStart int64
		for k := k0; k <= k1; k++ {
			r, err := f.record(k)
			if err != nil {
				readErr = err
				return
			}
			if r.Offset < chunkStart || r.End() > chunkStart+int64(len(chunk)) {
				last, err := f.record(k1)
				if err != nil {
					readErr = err
					return
				}
				size := min(max(streamChunk, int64(r.Size)), last.End()-r.Offset)
				chunk = make([]byte, size)
				if _, err := f.fd.ReadAt(chunk, r.Offset); err != nil && err != io.EOF {
					readErr = fmt.Errorf("%s: read: %w", f.name, err)
					return
				}
				chunkStart = r.Offset
			}
			member := chunk[r.Offset-chunkStart : r.End()-chunkStart]
			res := &result{k: k, rec: r, done: make(chan struct{})}
			select {
			case queue <- res:
			case <-stop:
				return
			}
			f.workers <- struct{}{}
			go func() {
				defer close(res.done)
				defer func() { <-f.workers }()
				buf := getBlockBuf(bgzf.MaxBlockData)
				if res.data, res.err = f.decodeBlock(buf, res.k, res.rec, member); res.err != nil {
					putBlockBuf(buf)
				}
			}()
		}
	}()
	var written int64
	var werr error
	for res := range queue {
		<-res.done
		if werr == nil && res.err != nil {
			werr = res.err
			f.logBlockError(res.err)
		}
		if werr == nil {
			d := res.data
			lo := max(off-res.rec.Logical, 0)
			hi := min(off+n-res.rec.Logical, int64(len(d)))
			var c int
			c, werr = w.Write(d[lo:hi])
			written += int64(c)
		}
		putBlockBuf(res.data)
		if werr != nil {
			select {
			case <-stop:
			default:
				close(stop)
			}
		}
	}
	if werr == nil {
		werr = readErr
	}
	return written, werr
}

// copyByReadAt is the WriteRange path for files with unflushed data.
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
