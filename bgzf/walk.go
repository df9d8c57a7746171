package bgzf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrTornTail means the stream ends with an incomplete member (for example
// after a crash while appending): less than one member's worth of bytes
// that hold no valid header. Walk reports the end of the last whole member
// with it, so the tail can be cut back.
var ErrTornTail = errors.New("bgzf: stream ends with an incomplete member")

// ErrDamaged means a damaged stretch could not be bridged: after it no
// valid member header leads to the end of the stream.
var ErrDamaged = errors.New("bgzf: damaged member headers")

// MemberInfo is what Walk tells of one member.
type MemberInfo struct {
	Offset  int64
	Size    int    // bytes of the member (of the damaged stretch when Damaged)
	ISize   uint32 // uncompressed length from the trailer
	Damaged bool   // the header did not parse: the stretch runs to the next valid header
	MTime   uint32 // the header's MTIME: gzfs's block number hint (see SetBlockNumber)
}

// Walk visits every member of the BGZF stream in r (size bytes) from header
// to header, without inflating. It returns the offset just past the last
// member visited.
//
// A stream that does not start with gzip gives an error wrapping ErrFormat,
// and so does a gzip stream that is not BGZF, wholly or in part (a member
// of another tool anywhere: ErrGzipMember). A damaged header in the
// middle (or at the start of a stream whose later members are BGZF) is
// bridged: the stretch up to the next header from which the walk reaches the
// end is reported as one Damaged member, whose ISIZE is read from the
// trailer before that header, so that the blocks after it keep their
// logical offsets. An incomplete member at the very end gives ErrTornTail;
// damage that cannot be bridged gives ErrDamaged.
func Walk(r io.ReaderAt, size int64, fn func(MemberInfo) error) (int64, error) {
	var off int64
	for off < size {
		h, err := headerAt(r, off, size)
		if err == nil {
			isize, err := isizeAt(r, off+int64(h.Size))
			if err != nil {
				return off, err
			}
			if isize <= MaxBlockData {
				if err := fn(MemberInfo{Offset: off, Size: h.Size, ISize: isize, MTime: h.MTime}); err != nil {
					return off, err
				}
				off += int64(h.Size)
				continue
			}
		}
		if errors.Is(err, ErrGzipMember) {
			// Another tool's gzip member (gzip, pigz): the stream is gzip
			// but not BGZF, whatever came before. Not damage to bridge.
			return off, fmt.Errorf("%w at offset %d", err, off)
		}
		// The member at off is not whole: bridge it, or stop.
		if off == 0 && !startsGzip(r, size) {
			return 0, fmt.Errorf("%w: not gzip", ErrFormat)
		}
		next, found := resync(r, off+1, size)
		if !found {
			if off == 0 {
				// A first member that is BGZF but cut short is a torn tail
				// (a first write caught by a power loss); any other
				// unreadable first header is not BGZF.
				if herr := headerErr(r, size); herr != nil && !errors.Is(herr, errCutShort) {
					return 0, herr
				}
			}
			if size-off <= MaxMemberSize+int64(len(EOFMember)) {
				return off, fmt.Errorf("%w at offset %d (%d bytes)", ErrTornTail, off, size-off)
			}
			return off, fmt.Errorf("%w at offset %d: no valid header in the %d bytes after it", ErrDamaged, off, size-off)
		}
		isize, err := isizeAt(r, next)
		if err != nil {
			return off, err
		}
		if isize > MaxBlockData {
			isize = 0 // its length is unreadable too: the numbering of the members after it may tell
		}
		if err := fn(MemberInfo{Offset: off, Size: int(next - off), ISize: isize, Damaged: true}); err != nil {
			return off, err
		}
		off = next
	}
	return off, nil
}

// headerAt parses the header of the member at off, checking it fits.
func headerAt(r io.ReaderAt, off, size int64) (Header, error) {
	var buf [64]byte
	n, err := r.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
	if err != nil && err != io.EOF {
		return Header{}, fmt.Errorf("bgzf: read header at %d: %w", off, err)
	}
	h, err := ParseHeader(buf[:n])
	if err == nil && off+int64(h.Size) > size {
		err = fmt.Errorf("%w: %w: member at %d needs %d bytes, %d left", ErrFormat, errCutShort, off, h.Size, size-off)
	}
	return h, err
}

// errCutShort: a member's header is valid but the stream ends before the
// member does.
var errCutShort = errors.New("cut short")

// headerErr is the error of the first header, for streams that are gzip
// but not BGZF.
func headerErr(r io.ReaderAt, size int64) error {
	_, err := headerAt(r, 0, size)
	return err
}

// isizeAt reads the ISIZE of the member that ends at end.
func isizeAt(r io.ReaderAt, end int64) (uint32, error) {
	var tr [4]byte
	if _, err := r.ReadAt(tr[:], end-4); err != nil {
		return 0, fmt.Errorf("bgzf: read trailer at %d: %w", end-4, err)
	}
	return binary.LittleEndian.Uint32(tr[:]), nil
}

func startsGzip(r io.ReaderAt, size int64) bool {
	var b [2]byte
	if size < 2 {
		return false
	}
	if _, err := r.ReadAt(b[:], 0); err != nil {
		return false
	}
	return IsGzip(b[:])
}

// resync finds the first offset at or after from, within one member's
// reach, where a valid header starts a chain of whole members that ends
// exactly at size.
func resync(r io.ReaderAt, from, size int64) (int64, bool) {
	window := make([]byte, MaxMemberSize)
	for base := from; base < min(size, from+resyncReach); base += int64(len(window)) - 3 {
		n, _ := r.ReadAt(window[:min(int64(len(window)), max(size-base, 0))], base)
		for i := 0; i+4 <= n; i++ {
			if window[i] != 0x1f || window[i+1] != 0x8b || window[i+2] != 8 || window[i+3]&4 == 0 {
				continue
			}
			if p := base + int64(i); chainReachesEnd(r, p, size) {
				return p, true
			}
		}
		if n < len(window) {
			break
		}
	}
	return 0, false
}

// resyncReach is how far past a damaged header Walk looks for the next
// valid one: past the most a writer leaves unsynced at once (the writes a
// power loss can lose), so that the members after a lost stretch are found.
const resyncReach = 16 << 20

// chainReachesEnd reports whether members from p are whole up to size.
func chainReachesEnd(r io.ReaderAt, p, size int64) bool {
	for p < size {
		h, err := headerAt(r, p, size)
		if err != nil {
			return false
		}
		p += int64(h.Size)
	}
	return p == size
}
