package gzindex

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sort"

	"golang.org/x/sys/unix"
)

// ErrCorrupt marks damaged deflate data in the gzip file.
var ErrCorrupt = errors.New("gzindex: corrupt gzip data")

// ErrStale means the index was built for another file, or for an earlier
// state of this one: rebuild it.
var ErrStale = errors.New("gzindex: index does not match the gzip file")

// ErrDamaged means the index file itself is damaged: rebuild it.
var ErrDamaged = errors.New("gzindex: damaged index file")

// Identity names the gzip file an index describes.
type Identity struct {
	Ino, Birth uint64  // inode and birth (see blockindex.FileID)
	Size       int64   // bytes of the gzip file
	MTime      int64   // its st_mtime in nanoseconds
	Tail       [8]byte // its last 8 bytes (the last member's CRC32 and ISIZE)
}

// File layout (little-endian):
//
//	header  HeaderSize bytes: magic, version, flags, identity, logical
//	        size, span, record count and offset, damage offset, CRC32
//	windows the compressed windows of the checkpoints, back to back
//	records RecordSize bytes each, by output offset
const (
	magic      = "GZFSCKP\x01"
	version    = 1
	HeaderSize = 112
	RecordSize = 40
	// WindowSize is the output a checkpoint keeps: deflate's reach back.
	WindowSize = 32 << 10
)

// Header flags.
const (
	flagDamaged = 1 << iota // decoding stopped at DamagedAt: data after it is unreadable
	flagGarbage             // bytes that are not a gzip member follow the last member (ignored, as gzip does)
)

// header is the decoded header of an index file.
type header struct {
	flags     uint32
	id        Identity
	logical   int64 // uncompressed bytes the index covers
	span      int64
	count     int64
	recOff    int64
	damagedAt int64 // compressed offset where decoding failed (flagDamaged)
}

func (h *header) encode() []byte {
	b := make([]byte, HeaderSize)
	copy(b, magic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], version)
	le.PutUint32(b[12:], h.flags)
	le.PutUint64(b[16:], h.id.Ino)
	le.PutUint64(b[24:], h.id.Birth)
	le.PutUint64(b[32:], uint64(h.id.Size))
	le.PutUint64(b[40:], uint64(h.id.MTime))
	copy(b[48:56], h.id.Tail[:])
	le.PutUint64(b[56:], uint64(h.logical))
	le.PutUint64(b[64:], uint64(h.span))
	le.PutUint64(b[72:], uint64(h.count))
	le.PutUint64(b[80:], uint64(h.recOff))
	le.PutUint64(b[88:], uint64(h.damagedAt))
	le.PutUint32(b[HeaderSize-4:], crc32.ChecksumIEEE(b[:HeaderSize-4]))
	return b
}

func decodeHeader(b []byte) (header, error) {
	if len(b) < HeaderSize || string(b[:8]) != magic {
		return header{}, fmt.Errorf("%w: not a checkpoint index", ErrDamaged)
	}
	le := binary.LittleEndian
	if crc32.ChecksumIEEE(b[:HeaderSize-4]) != le.Uint32(b[HeaderSize-4:]) {
		return header{}, fmt.Errorf("%w: header checksum", ErrDamaged)
	}
	if v := le.Uint32(b[8:]); v != version {
		return header{}, fmt.Errorf("%w: version %d", ErrDamaged, v)
	}
	h := header{
		flags: le.Uint32(b[12:]),
		id: Identity{Ino: le.Uint64(b[16:]), Birth: le.Uint64(b[24:]),
			Size: int64(le.Uint64(b[32:])), MTime: int64(le.Uint64(b[40:]))},
		logical:   int64(le.Uint64(b[56:])),
		span:      int64(le.Uint64(b[64:])),
		count:     int64(le.Uint64(b[72:])),
		recOff:    int64(le.Uint64(b[80:])),
		damagedAt: int64(le.Uint64(b[88:])),
	}
	copy(h.id.Tail[:], b[48:56])
	if h.logical < 0 || h.span <= 0 || h.count < 0 || h.recOff < HeaderSize ||
		h.count > (int64(len(b))-h.recOff)/RecordSize || h.recOff+h.count*RecordSize != int64(len(b)) {
		return header{}, fmt.Errorf("%w: inconsistent header", ErrDamaged)
	}
	return h, nil
}

// Point is one checkpoint: where output offset Out starts in the gzip file.
type Point struct {
	Out    int64  // uncompressed offset
	In     int64  // offset of the first byte of the gzip file not yet consumed
	Bits   int    // 0..7: bits of the byte before In that belong to the block
	winOff int64  // offset of the compressed window in the index file
	winLen uint32 // its length (0: no window, the start of the stream)
	winCRC uint32 // CRC32 of the uncompressed window
}

func (p *Point) encode(b []byte) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], uint64(p.Out))
	le.PutUint64(b[8:], uint64(p.In))
	le.PutUint64(b[16:], uint64(p.winOff))
	le.PutUint32(b[24:], p.winLen)
	le.PutUint32(b[28:], p.winCRC)
	b[32] = byte(p.Bits)
	b[33], b[34], b[35] = 0, 0, 0
	le.PutUint32(b[36:], crc32.ChecksumIEEE(b[:36]))
}

func decodePoint(b []byte) (Point, error) {
	le := binary.LittleEndian
	if crc32.ChecksumIEEE(b[:36]) != le.Uint32(b[36:]) {
		return Point{}, fmt.Errorf("%w: record checksum", ErrDamaged)
	}
	p := Point{Out: int64(le.Uint64(b[0:])), In: int64(le.Uint64(b[8:])), winOff: int64(le.Uint64(b[16:])),
		winLen: le.Uint32(b[24:]), winCRC: le.Uint32(b[28:]), Bits: int(b[32])}
	if p.Bits > 7 || p.Out < 0 || p.In < 0 {
		return Point{}, fmt.Errorf("%w: record out of range", ErrDamaged)
	}
	return p, nil
}

// Index is an open, mapped checkpoint index.
type Index struct {
	mem    []byte
	mapped bool // mem is a map of the index file (Open), not bytes on the heap
	h      header
	// An index being built (see Live) is read from its files instead of
	// a map: records from rec, windows from win.
	rec, win io.ReaderAt
}

// Open maps the index at path and checks it against the gzip file id:
// ErrStale when it was built for another file or state, ErrDamaged when
// it does not parse, an error wrapping os.ErrNotExist when there is none.
func Open(path string, id Identity) (*Index, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < HeaderSize || st.Size() > 1<<40 {
		return nil, fmt.Errorf("%w: %d bytes", ErrDamaged, st.Size())
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map index: %w", err)
	}
	x, err := parse(mem)
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	if x.h.id != id {
		unix.Munmap(mem)
		return nil, fmt.Errorf("%w: built for inode %d size %d, file is inode %d size %d",
			ErrStale, x.h.id.Ino, x.h.id.Size, id.Ino, id.Size)
	}
	x.mapped = true
	x.release(0, int64(len(mem))) // parse read every record: map them again as used
	return x, nil
}

// parse checks the header and every record of an index image.
func parse(mem []byte) (*Index, error) {
	h, err := decodeHeader(mem)
	if err != nil {
		return nil, err
	}
	x := &Index{mem: mem, h: h}
	var prev Point
	for i := int64(0); i < h.count; i++ {
		p, err := x.At(i)
		if err != nil {
			return nil, err
		}
		// (winOff is checked against recOff before it is added to: a huge
		// one passed the sum, which wrapped, and a read of its window
		// panicked.)
		if (i > 0 && (p.Out < prev.Out || p.In < prev.In)) || p.Out < 0 || p.In < 0 || p.Out > h.logical ||
			p.In > h.id.Size || p.winOff < HeaderSize || p.winOff > h.recOff || int64(p.winLen) > h.recOff-p.winOff {
			return nil, fmt.Errorf("%w: record %d out of order or range", ErrDamaged, i)
		}
		prev = p
	}
	if h.count == 0 && h.logical > 0 {
		return nil, fmt.Errorf("%w: no checkpoints", ErrDamaged)
	}
	return x, nil
}

// Close unmaps the index.
func (x *Index) Close() error {
	if x.mem == nil {
		return nil
	}
	err := unix.Munmap(x.mem)
	x.mem = nil
	return err
}

// Len is the number of checkpoints.
func (x *Index) Len() int64 { return x.h.count }

// Size is the uncompressed size the index covers: the file's size unless
// Damaged.
func (x *Index) Size() int64 { return x.h.logical }

// Span is the distance between checkpoints the index was built with.
func (x *Index) Span() int64 { return x.h.span }

// Damaged returns the compressed offset where the gzip data stops being
// readable, or -1 when the whole file decodes.
func (x *Index) Damaged() int64 {
	if x.h.flags&flagDamaged == 0 {
		return -1
	}
	return x.h.damagedAt
}

// Bytes is the size of the index file.
func (x *Index) Bytes() int64 { return int64(len(x.mem)) }

// At returns checkpoint i.
func (x *Index) At(i int64) (Point, error) {
	if i < 0 || i >= x.h.count {
		return Point{}, fmt.Errorf("gzindex: checkpoint %d of %d", i, x.h.count)
	}
	if x.mem == nil {
		var b [RecordSize]byte
		if _, err := x.rec.ReadAt(b[:], i*RecordSize); err != nil {
			return Point{}, fmt.Errorf("gzindex: read checkpoint %d: %w", i, err)
		}
		return decodePoint(b[:])
	}
	off := x.h.recOff + i*RecordSize
	return decodePoint(x.mem[off : off+RecordSize])
}

// find returns the last checkpoint at or before output offset off.
func (x *Index) find(off int64) (Point, error) {
	var ferr error
	i := sort.Search(int(x.h.count), func(i int) bool {
		p, err := x.At(int64(i))
		if err != nil {
			ferr = err
			return true
		}
		return p.Out > off
	})
	if ferr != nil {
		return Point{}, ferr
	}
	if i == 0 {
		return Point{}, fmt.Errorf("%w: no checkpoint before offset %d", ErrDamaged, off)
	}
	return x.At(int64(i - 1))
}

// Search returns the number of the first checkpoint at or after output
// offset off (Len when there is none).
func (x *Index) Search(off int64) int64 {
	return int64(sort.Search(int(x.h.count), func(i int) bool {
		p, err := x.At(int64(i))
		return err != nil || p.Out >= off
	}))
}

// release hands the pages of the map over bytes [lo, hi) of the index
// file back to the kernel (they stay in the page cache; the next use maps
// them again, a minor fault). Random reads over a huge file touch one
// window each, used once to start inflating: without this the windows
// read so far would stay in the process's memory, up to the whole index
// (about 0.3 % of the file). Safe while other readers use the same pages:
// the map is a read-only view of a file.
func (x *Index) release(lo, hi int64) {
	if !x.mapped || x.mem == nil || hi <= lo {
		return
	}
	// A fault maps the pages around it as well (the kernel's
	// fault_around_bytes, 64 KiB): release what it may have mapped.
	const around = 64 << 10
	page := int64(max(os.Getpagesize(), around))
	lo = lo / page * page
	hi = min((hi+page-1)/page*page, int64(len(x.mem)))
	if hi > lo {
		unix.Madvise(x.mem[lo:hi], unix.MADV_DONTNEED)
	}
}

// window returns the compressed window bytes of p (a view of the map).
func (x *Index) window(p Point) []byte {
	if x.mem == nil {
		b := make([]byte, p.winLen)
		if _, err := x.win.ReadAt(b, p.winOff); err != nil {
			return nil // fails its CRC
		}
		return b
	}
	return x.mem[p.winOff : p.winOff+int64(p.winLen)]
}
