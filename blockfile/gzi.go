package blockfile

import (
	"bufio"
	"encoding/binary"
	"io"
	"os"
	"time"

	"github.com/gzfs/gzfs/bgzf"
	"github.com/gzfs/gzfs/blockindex"
)

// recordsFromGZI fills x from htslib's .gzi index beside the backing file
// (NAME.gzi, as 'bgzip -i' writes it: a count, then the compressed and
// uncompressed offset of every block but the first), so that a big BGZF
// file made by another tool needs no walk over its member headers. It
// reads the .gzi as a stream (memory stays bounded) and checks that its
// offsets increase and stay inside the file and that the first and last
// blocks start with a member header. It returns the number of records,
// the logical size, the first block's length and true, or false (x
// emptied) when there is no usable .gzi: the caller walks the headers.
func (f *File) recordsFromGZI(x *blockindex.Index, physical int64, spill func() error) (int64, int64, uint32, bool) {
	if f.name == "" || physical < int64(len(bgzf.EOFMember)) || f.skipGZI {
		return 0, 0, 0, false
	}
	g, err := os.Open(f.name + ".gzi")
	if err != nil {
		return 0, 0, 0, false
	}
	defer g.Close()
	// bgzip -i writes the .gzi just before it closes the file (whose last
	// block and EOF marker then land a moment later): a .gzi older than the
	// file by more than that moment is of an earlier version of it
	// (appended to or rewritten since).
	if gst, err := g.Stat(); err != nil {
		return 0, 0, 0, false
	} else if st, err := f.fd.Stat(); err != nil || gst.ModTime().Before(st.ModTime().Add(-gziSlack)) {
		f.log.Info("ignoring the .gzi file beside it: older than the file", "file", f.name)
		return 0, 0, 0, false
	}
	n, logical, first, err := f.readGZI(bufio.NewReaderSize(g, 64<<10), x, physical, spill)
	if err != nil {
		f.log.Warn("ignoring the .gzi file beside it (the headers are walked instead)", "file", f.name, "reason", err)
		x.Truncate(0)
		return 0, 0, 0, false
	}
	return n, logical, first, true
}

// gziSlack is how much older than its file a .gzi may be and still count
// as written with it.
const gziSlack = 5 * time.Second

// errGZI describes why a .gzi does not fit the file.
type errGZI string

func (e errGZI) Error() string { return string(e) }

func (f *File) readGZI(r io.Reader, x *blockindex.Index, physical int64, spill func() error) (int64, int64, uint32, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:8]); err != nil {
		return 0, 0, 0, errGZI("truncated .gzi")
	}
	count := binary.LittleEndian.Uint64(b[:8])
	if count > uint64(physical/int64(len(bgzf.EOFMember))) {
		return 0, 0, 0, errGZI("more blocks than the file can hold")
	}
	var i, prevC, prevU int64
	var first uint32
	add := func(end, length int64) error {
		if end <= prevC || length < 0 || length > bgzf.MaxBlockData || end-prevC > bgzf.MaxMemberSize {
			return errGZI("offsets out of order or of range")
		}
		if i == 0 {
			first = uint32(length)
		}
		if i == 1 && int(first) >= MinBlockSize {
			x.SetBlockSize(int(first))
		}
		if err := x.Set(i, blockindex.Record{Offset: prevC, Logical: prevU, Size: uint32(end - prevC), Length: uint32(length)}); err != nil {
			return err
		}
		i++
		if spillDue(x, i, uint32(length), end, physical) {
			if err := spill(); err != nil {
				return err
			}
		}
		prevC, prevU = end, prevU+length
		return nil
	}
	for k := uint64(0); k < count; k++ {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, 0, 0, errGZI("truncated .gzi")
		}
		c, u := int64(binary.LittleEndian.Uint64(b[:8])), int64(binary.LittleEndian.Uint64(b[8:]))
		if c >= physical || u < prevU {
			return 0, 0, 0, errGZI("offsets out of order or of range")
		}
		if err := add(c, u-prevU); err != nil {
			return 0, 0, 0, err
		}
	}
	// The last blocks: up to the EOF marker (if any), then the marker.
	dataEnd := physical
	if f.endsWithEOF(physical) && prevC < physical-int64(len(bgzf.EOFMember)) {
		dataEnd = physical - int64(len(bgzf.EOFMember))
	}
	isize, err := f.isizeBefore(dataEnd)
	if err != nil {
		return 0, 0, 0, err
	}
	if err := add(dataEnd, isize); err != nil {
		return 0, 0, 0, err
	}
	if dataEnd < physical {
		if err := add(physical, 0); err != nil {
			return 0, 0, 0, err
		}
	}
	// Spot checks: the first and the last blocks start with a member header
	// of the recorded size (the last record is the EOF marker or, when
	// something else was appended since, what the .gzi does not know).
	for _, k := range []int64{0, max(i-2, 0), i - 1} {
		r, err := x.At(k)
		if err != nil {
			return 0, 0, 0, err
		}
		hdr := make([]byte, bgzf.HeaderSize)
		if _, err := f.fd.ReadAt(hdr, r.Offset); err != nil {
			return 0, 0, 0, errGZI("a block lies past the end of the file")
		}
		h, err := bgzf.ParseHeader(hdr)
		if err != nil || int64(h.Size) != int64(r.Size) {
			return 0, 0, 0, errGZI("a block does not start where the .gzi says")
		}
	}
	return i, prevU, first, nil
}

// isizeBefore reads the ISIZE trailer of the member that ends at end.
func (f *File) isizeBefore(end int64) (int64, error) {
	var b [4]byte
	if end < 4 {
		return 0, errGZI("no member")
	}
	if _, err := f.fd.ReadAt(b[:], end-4); err != nil {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint32(b[:])), nil
}
