package bgzf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Sizes of the fixed parts of a member.
const (
	HeaderSize    = 18    // header with XLEN 6 and the BC subfield, as written here
	TrailerSize   = 8     // CRC32 and ISIZE
	MinMemberSize = 28    // an empty member with a 2-byte terminator
	MaxMemberSize = 65536 // BSIZE is a uint16 holding size-1
	MaxBlockData  = 65536 // the most uncompressed bytes one member may hold
	minTerminator = 2
)

// ErrFormat is wrapped by every error about malformed member bytes.
var ErrFormat = errors.New("bgzf: malformed member")

// ErrGzipMember is wrapped by the errors about a well-formed gzip member
// header that is not BGZF's (no extra field, or a name or a comment): what
// gzip and pigz write, not damage. It wraps ErrFormat.
var ErrGzipMember = fmt.Errorf("%w: gzip member that is not BGZF", ErrFormat)

// EOFMember is the empty member htslib appends to mark the end of a file.
var EOFMember = []byte{
	0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff, 0x06, 0, 0x42, 0x43, 0x02, 0,
	0x1b, 0, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0,
}

// Header is what the fixed-size start of a member tells without inflating.
type Header struct {
	Size       int    // whole member size in bytes (BSIZE+1)
	HeaderSize int    // bytes before the deflate data (12 + XLEN)
	MTime      uint32 // the MTIME field: gzfs's block number hint
}

// ParseHeader parses the member header at the start of b. b must hold the
// whole header (HeaderSize bytes suffice for members with XLEN 6; callers
// with a longer XLEN get an error asking for more via NeedHeaderBytes).
func ParseHeader(b []byte) (Header, error) {
	if len(b) < 12 {
		return Header{}, fmt.Errorf("%w: short header (%d bytes)", ErrFormat, len(b))
	}
	if b[0] != 0x1f || b[1] != 0x8b {
		return Header{}, fmt.Errorf("%w: not gzip (magic %02x %02x)", ErrFormat, b[0], b[1])
	}
	if b[2] != 8 {
		return Header{}, fmt.Errorf("%w: compression method %d is not deflate", ErrFormat, b[2])
	}
	if b[3]&0xe0 != 0 {
		return Header{}, fmt.Errorf("%w: reserved gzip flags %#02x", ErrFormat, b[3])
	}
	if b[3]&^1 != 4 { // FTEXT (bit 0) is harmless
		// No extra field, or a name, comment or header CRC: BGZF members
		// have none (readers that assume an 18-byte header would misread
		// them). Another tool's member, unless the bytes where BGZF's extra
		// field goes are just that: a BGZF header with a damaged flag byte.
		if len(b) >= 16 && bytes.Equal(b[10:16], headerStart[10:16]) {
			return Header{}, fmt.Errorf("%w: gzip flags %#02x in a BGZF header", ErrFormat, b[3])
		}
		return Header{}, fmt.Errorf("%w: gzip flags %#02x", ErrGzipMember, b[3])
	}
	xlen := int(binary.LittleEndian.Uint16(b[10:12]))
	hsize := 12 + xlen
	if len(b) < hsize {
		return Header{}, fmt.Errorf("%w: header needs %d bytes, have %d", ErrFormat, hsize, len(b))
	}
	extra := b[12:hsize]
	for len(extra) >= 4 {
		slen := int(binary.LittleEndian.Uint16(extra[2:4]))
		if 4+slen > len(extra) {
			break
		}
		if extra[0] == 'B' && extra[1] == 'C' && slen == 2 {
			size := int(binary.LittleEndian.Uint16(extra[4:6])) + 1
			if size < hsize+TrailerSize {
				return Header{}, fmt.Errorf("%w: BSIZE %d too small", ErrFormat, size-1)
			}
			return Header{Size: size, HeaderSize: hsize, MTime: binary.LittleEndian.Uint32(b[4:8])}, nil
		}
		extra = extra[4+slen:]
	}
	// An extra field without BC: another format's member (dictzip) or a
	// damaged BGZF header; Walk bridges it as damage.
	return Header{}, fmt.Errorf("%w: no BC subfield (not BGZF)", ErrFormat)
}

// SetBlockNumber writes the block number k of a member into its MTIME
// field (modulo 2^32; block 0 keeps MTIME 0, so gunzip -N sees no time).
// gzip tools ignore the MTIME of members; gzfs uses it to place the members
// that follow a damaged stretch (lost writeback after a power loss) at their
// logical offsets.
func SetBlockNumber(member []byte, k int64) {
	binary.LittleEndian.PutUint32(member[4:8], uint32(k))
}

// BlockNumber returns the MTIME of a member (see SetBlockNumber); the
// member's header must have been checked (ParseHeader, Decode).
func BlockNumber(member []byte) uint32 {
	return binary.LittleEndian.Uint32(member[4:8])
}

// IsGzip reports whether b starts with the gzip magic.
func IsGzip(b []byte) bool { return len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b }

// headerStart is how gzfs's (and htslib's) members start, up to BSIZE; the
// MTIME bytes (4 to 7) vary (see SetBlockNumber).
var headerStart = [16]byte{0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff, 0x06, 0, 'B', 'C', 0x02, 0}

// MemberStart reports whether b is how member k starts when gzfs writes
// it, as far as b goes (the fixed header bytes with k in MTIME; see
// SetBlockNumber): what an append of member k cut short leaves.
func MemberStart(b []byte, k int64) bool {
	want := headerStart
	binary.LittleEndian.PutUint32(want[4:8], uint32(k))
	n := min(len(b), len(want))
	return len(b) > 0 && bytes.Equal(b[:n], want[:n])
}

// EOFStart reports whether b is the start of the EOF marker, as far as b
// goes (the bytes before its BSIZE are those of any member with MTIME 0).
func EOFStart(b []byte) bool {
	return len(b) > 0 && len(b) <= len(EOFMember) && bytes.Equal(b, EOFMember[:len(b)])
}

// putHeader writes the 18-byte BGZF header for a member of size bytes.
func putHeader(dst []byte, size int) {
	copy(dst, headerStart[:])
	binary.LittleEndian.PutUint16(dst[16:18], uint16(size-1))
}

// Trailer returns the CRC32 and ISIZE of a whole member.
func Trailer(member []byte) (crc uint32, isize uint32) {
	n := len(member)
	return binary.LittleEndian.Uint32(member[n-8:]), binary.LittleEndian.Uint32(member[n-4:])
}
