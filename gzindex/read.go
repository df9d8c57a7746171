package gzindex

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/flate"
)

// readChunk is how much of the gzip file a read takes at a time.
const readChunk = 64 << 10

// ReadAt reads len(p) bytes at uncompressed offset off of the gzip file r
// that the index describes, inflating from the checkpoint before off. It
// returns io.EOF at the end of the file, and an error wrapping ErrCorrupt
// (naming the compressed offset) for data past damage.
func (x *Index) ReadAt(r io.ReaderAt, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("gzindex: negative offset %d", off)
	}
	if off >= x.h.logical || len(p) == 0 {
		return 0, x.endErr(off)
	}
	rd, err := x.NewReader(r, off)
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	n, err := io.ReadFull(rd, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

// Reader reads a gzip file sequentially from an offset placed through the
// index: a sequential reader pays the checkpoint once, not per read.
type Reader struct {
	x              *Index
	r              io.ReaderAt
	z              *inflater
	off            int64 // uncompressed offset of the next byte Read returns
	pos            int64 // offset in the gzip file of in[inEnd]
	in             []byte
	inStart, inEnd int
	eof            bool // the gzip file has no bytes after in
	err            error
}

// NewReader returns a Reader at uncompressed offset off.
func (x *Index) NewReader(r io.ReaderAt, off int64) (*Reader, error) {
	rd, err := x.place(r, off)
	if err != nil {
		return nil, err
	}
	if err := rd.skipTo(off); err != nil {
		rd.Close()
		return nil, err
	}
	return rd, nil
}

// place returns a Reader at the checkpoint at or before off: the part of
// NewReader that reads the index (a record and its window).
func (x *Index) place(r io.ReaderAt, off int64) (*Reader, error) {
	if off < 0 || off > x.h.logical {
		return nil, fmt.Errorf("gzindex: offset %d out of range 0..%d", off, x.h.logical)
	}
	rd := &Reader{x: x, r: r, off: off}
	if off == x.h.logical {
		rd.err = x.endErr(off)
		return rd, nil
	}
	pt, err := x.find(off)
	if err != nil {
		return nil, err
	}
	dict, err := x.windowOf(pt)
	if err != nil {
		return nil, err
	}
	if rd.z, err = getInflater(wbitsRaw); err != nil {
		return nil, err
	}
	rd.pos = pt.In
	if pt.Bits > 0 {
		var one [1]byte
		if _, err := r.ReadAt(one[:], pt.In-1); err != nil {
			rd.Close()
			return nil, fmt.Errorf("read gzip file at %d: %w", pt.In-1, err)
		}
		if err := rd.z.prime(pt.Bits, int(one[0])>>(8-pt.Bits)); err != nil {
			rd.Close()
			return nil, err
		}
	}
	if err := rd.z.setDict(dict); err != nil {
		rd.Close()
		return nil, err
	}
	rd.in = make([]byte, readChunk)
	rd.off = pt.Out
	return rd, nil
}

// skipTo inflates up to off (from the checkpoint place put rd at).
func (rd *Reader) skipTo(off int64) error {
	if skip := off - rd.off; skip > 0 {
		return rd.Skip(skip)
	}
	return nil
}

// inflated counts the bytes all Readers of the process inflated (Skip
// included).
var inflated atomic.Int64

// Inflated is the number of uncompressed bytes all Readers of this process
// have produced so far, those Skip discarded included: set against the
// bytes read, it shows the work a read pattern wastes.
func Inflated() int64 { return inflated.Load() }

// Offset is the uncompressed offset of the next byte Read returns.
func (rd *Reader) Offset() int64 { return rd.off }

// Skip discards n bytes of output.
func (rd *Reader) Skip(n int64) error {
	buf := make([]byte, min(n, 64<<10))
	for n > 0 {
		m, err := rd.Read(buf[:min(n, int64(len(buf)))])
		n -= int64(m)
		if err != nil {
			return err
		}
	}
	return nil
}

// Read returns the next uncompressed bytes; io.EOF at the end of the file.
func (rd *Reader) Read(p []byte) (int, error) {
	if rd.err != nil {
		return 0, rd.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	rest := rd.x.h.logical - rd.off
	if rest <= 0 {
		rd.err = rd.x.endErr(rd.off)
		return 0, rd.err
	}
	if int64(len(p)) > rest {
		p = p[:rest]
	}
	n := 0
	for n < len(p) {
		if rd.inStart == rd.inEnd && !rd.eof {
			m, err := rd.r.ReadAt(rd.in, rd.pos)
			if m == 0 && err != nil && !errors.Is(err, io.EOF) {
				return n, rd.fail(fmt.Errorf("read gzip file at %d: %w", rd.pos, err))
			}
			if m < len(rd.in) {
				rd.eof = true
			}
			rd.inStart, rd.inEnd = 0, m
			rd.pos += int64(m)
		}
		c, m, _, res, err := rd.z.step(rd.in[rd.inStart:rd.inEnd], p[n:], false)
		inflated.Add(int64(m))
		rd.inStart += c
		n += m
		rd.off += int64(m)
		if err != nil {
			return n, rd.fail(fmt.Errorf("%w (near compressed offset %d)", err, rd.pos-int64(rd.inEnd-rd.inStart)))
		}
		switch res {
		case stepStreamEnd:
			// The end of a member: its trailer (8 bytes, after raw deflate
			// data), then the next member read with its gzip framing.
			if rd.z.wbits == wbitsRaw {
				rd.skipInput(8)
			}
			if !rd.moreMembers() {
				// The end of the gzip data (the index knows where; an index
				// being built does not yet): what follows is ignored, as
				// gzip does.
				rd.err = io.EOF
				if n == 0 {
					return 0, io.EOF
				}
				return n, nil
			}
			if err := rd.z.reset(wbitsGzip); err != nil {
				return n, rd.fail(err)
			}
		case stepNeedInput:
			if rd.inStart == rd.inEnd && rd.eof {
				return n, rd.fail(fmt.Errorf("%w: the file ends inside a member (near compressed offset %d)", ErrCorrupt, rd.pos))
			}
		}
	}
	return n, nil
}

func (rd *Reader) fail(err error) error {
	rd.err = err
	return err
}

// moreMembers reports whether another gzip member follows the input
// position.
func (rd *Reader) moreMembers() bool {
	var b [2]byte
	if rd.inEnd-rd.inStart >= 2 {
		copy(b[:], rd.in[rd.inStart:])
	} else if m, _ := rd.r.ReadAt(b[:], rd.pos-int64(rd.inEnd-rd.inStart)); m < 2 {
		return false
	}
	return b[0] == 0x1f && b[1] == 0x8b
}

// skipInput consumes k bytes of input, from the buffer first.
func (rd *Reader) skipInput(k int) {
	avail := rd.inEnd - rd.inStart
	if avail >= k {
		rd.inStart += k
		return
	}
	rd.inStart = rd.inEnd
	rd.pos += int64(k - avail)
}

// Close gives the Reader's inflater back; the Reader cannot be used after.
func (rd *Reader) Close() error {
	if rd.z != nil {
		inflaters.Put(rd.z)
		rd.z = nil
	}
	if rd.err == nil {
		rd.err = os.ErrClosed
	}
	return nil
}

// endErr is what a read at or past the end of the readable data gets.
func (x *Index) endErr(off int64) error {
	if x.h.flags&flagDamaged != 0 && off >= x.h.logical {
		return fmt.Errorf("%w: data at offset %d and after is unreadable (damaged at compressed offset %d)",
			ErrCorrupt, x.h.logical, x.h.damagedAt)
	}
	return io.EOF
}

var windowBufs = sync.Pool{New: func() any { b := make([]byte, 0, WindowSize); return &b }}

// windowOf inflates and checks the window of checkpoint p.
func (x *Index) windowOf(p Point) ([]byte, error) {
	if p.winLen == 0 {
		return nil, nil
	}
	buf := windowBufs.Get().(*[]byte)
	defer windowBufs.Put(buf)
	fr := flate.NewReader(bytes.NewReader(x.window(p)))
	defer fr.Close()
	w := bytes.NewBuffer((*buf)[:0])
	if _, err := io.Copy(w, io.LimitReader(fr, WindowSize+1)); err != nil {
		return nil, fmt.Errorf("%w: window of checkpoint at %d: %v", ErrDamaged, p.Out, err)
	}
	x.release(p.winOff, p.winOff+int64(p.winLen)) // read once per seek: see release
	if w.Len() > WindowSize || crc32.ChecksumIEEE(w.Bytes()) != p.winCRC {
		return nil, fmt.Errorf("%w: window of checkpoint at %d", ErrDamaged, p.Out)
	}
	return bytes.Clone(w.Bytes()), nil
}

var inflaters = sync.Pool{}

func getInflater(wbits int) (*inflater, error) {
	if z, ok := inflaters.Get().(*inflater); ok {
		return z, z.reset(wbits)
	}
	return newInflater(wbits)
}
