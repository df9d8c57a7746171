package bgzf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrTornTail means the stream ends with an incomplete member (for example
// after a crash while appending). Walk reports the end of the last whole
// member with it, so the tail can be cut back.
var ErrTornTail = errors.New("bgzf: stream ends with an incomplete member")

// Walk visits every member of the BGZF stream in r (size bytes) from header
// to header, without inflating: fn gets the member's offset, its size and
// its ISIZE. It returns the offset just past the last whole member. A stream
// that does not start with a BGZF member gives an error wrapping ErrFormat;
// an incomplete or unreadable member after at least one whole member gives
// ErrTornTail.
func Walk(r io.ReaderAt, size int64, fn func(off int64, memberSize int, isize uint32) error) (int64, error) {
	var buf [64]byte
	var off int64
	for off < size {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if err != nil && err != io.EOF {
			return off, fmt.Errorf("bgzf: read header at %d: %w", off, err)
		}
		h, perr := ParseHeader(buf[:n])
		if perr == nil && off+int64(h.Size) > size {
			perr = fmt.Errorf("%w: member at %d needs %d bytes, %d left", ErrFormat, off, h.Size, size-off)
		}
		if perr != nil {
			if off == 0 {
				return 0, perr
			}
			return off, fmt.Errorf("%w at offset %d: %v", ErrTornTail, off, perr)
		}
		var tr [4]byte
		if _, err := r.ReadAt(tr[:], off+int64(h.Size)-4); err != nil {
			return off, fmt.Errorf("bgzf: read trailer at %d: %w", off, err)
		}
		isize := binary.LittleEndian.Uint32(tr[:])
		if isize > MaxBlockData {
			if off == 0 {
				return 0, fmt.Errorf("%w: ISIZE %d of member at 0", ErrFormat, isize)
			}
			return off, fmt.Errorf("%w at offset %d: ISIZE %d", ErrTornTail, off, isize)
		}
		if err := fn(off, h.Size, isize); err != nil {
			return off, err
		}
		off += int64(h.Size)
	}
	return off, nil
}
