package gzindex

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

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
	pt, err := x.find(off)
	if err != nil {
		return 0, err
	}
	dict, err := x.windowOf(pt)
	if err != nil {
		return 0, err
	}
	want := p[:min(int64(len(p)), x.h.logical-off)]
	n, err := extract(r, pt, dict, off-pt.Out, want)
	if err != nil {
		return n, err
	}
	if n < len(p) {
		return n, x.endErr(off + int64(n))
	}
	return n, nil
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

// extract inflates from checkpoint pt (with window dict), skips skip
// bytes of output and fills out. It returns the bytes filled.
func extract(r io.ReaderAt, pt Point, dict []byte, skip int64, out []byte) (int, error) {
	z, err := getInflater(wbitsRaw)
	if err != nil {
		return 0, err
	}
	defer inflaters.Put(z)
	pos := pt.In
	if pt.Bits > 0 {
		var one [1]byte
		if _, err := r.ReadAt(one[:], pt.In-1); err != nil {
			return 0, fmt.Errorf("read gzip file at %d: %w", pt.In-1, err)
		}
		if err := z.prime(pt.Bits, int(one[0])>>(8-pt.Bits)); err != nil {
			return 0, err
		}
	}
	if err := z.setDict(dict); err != nil {
		return 0, err
	}
	in := make([]byte, readChunk)
	var discard []byte
	if skip > 0 {
		discard = make([]byte, min(skip, 64<<10))
	}
	inStart, inEnd := 0, 0
	eof := false
	n := 0
	for n < len(out) {
		if inStart == inEnd && !eof {
			m, err := r.ReadAt(in, pos)
			if m == 0 && err != nil && !errors.Is(err, io.EOF) {
				return n, fmt.Errorf("read gzip file at %d: %w", pos, err)
			}
			if m < len(in) {
				eof = true
			}
			inStart, inEnd = 0, m
			pos += int64(m)
		}
		var dst []byte
		if skip > 0 {
			dst = discard[:min(skip, int64(len(discard)))]
		} else {
			dst = out[n:]
		}
		c, p, _, res, err := z.step(in[inStart:inEnd], dst, false)
		inStart += c
		if skip > 0 {
			skip -= int64(p)
		} else {
			n += p
		}
		if err != nil {
			return n, fmt.Errorf("%w (near compressed offset %d)", err, pos-int64(inEnd-inStart))
		}
		switch res {
		case stepStreamEnd:
			// The end of a member: its trailer (8 bytes, after raw deflate
			// data), then the next member read with its gzip framing.
			if z.wbits == wbitsRaw {
				if err := skipInput(&inStart, inEnd, &pos, 8, r); err != nil {
					return n, err
				}
			}
			if err := z.reset(wbitsGzip); err != nil {
				return n, err
			}
		case stepNeedInput:
			if inStart == inEnd && eof {
				return n, fmt.Errorf("%w: the file ends inside a member (near compressed offset %d)", ErrCorrupt, pos)
			}
		}
	}
	return n, nil
}

// skipInput consumes k bytes of input, from the buffer first.
func skipInput(inStart *int, inEnd int, pos *int64, k int, r io.ReaderAt) error {
	avail := inEnd - *inStart
	if avail >= k {
		*inStart += k
		return nil
	}
	*inStart = inEnd
	*pos += int64(k - avail)
	return nil
}
