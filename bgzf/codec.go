package bgzf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress"
	"github.com/klauspost/compress/flate"
)

// Member is an encoded member and where its padding is, which Repad needs
// to resize it without recompressing.
type Member struct {
	Bytes []byte
	// TermLen is the length of the terminator ending a flexible member's
	// deflate data (0 when the member has none).
	TermLen int
	// Prefixed marks a member whose deflate data is padding (PrefixLen
	// bytes of empty blocks) followed by a complete stream, as made by a
	// whole-buffer compressor (libdeflate).
	Prefixed  bool
	PrefixLen int
}

// Encoder compresses blocks into members. It is not safe for concurrent
// use; take one per goroutine from an EncoderPool.
type Encoder struct {
	level int
	fw    *flate.Writer // made by the first EncodeFlexible that needs it
	body  bytes.Buffer
	fast  *fastEncoder // nil unless built with libdeflate
	// fastBody is the deflate output buffer of fast, kept between blocks
	// (a new one per block cost a cleared 64 KiB allocation).
	fastBody []byte
}

// klauspostLevels maps a level 1..9 to the klauspost/compress deflate level
// that gives about the ratio of gzip at that level: klauspost trades some
// ratio for speed at equal level numbers (measured on a tar of GOROOT/src,
// see docs/format.md). Index 0 is unused.
var klauspostLevels = [10]int{0, 1, 2, 3, 5, 7, 8, 8, 9, 9}

// NewEncoder returns an encoder for level 1..9, numbered like gzip's: level
// N gives about the ratio of gzip -N or better.
func NewEncoder(level int) (*Encoder, error) {
	if level < 1 || level > 9 {
		return nil, fmt.Errorf("bgzf: compression level %d out of range 1..9", level)
	}
	return &Encoder{level: level, fast: newFastEncoder(level)}, nil
}

// incompressible guesses cheaply whether deflate would gain nothing on data.
func incompressible(data []byte) bool {
	if len(data) < 1024 {
		return false
	}
	sample := data
	if len(sample) > 8192 {
		sample = sample[:8192]
	}
	return compress.ShannonEntropyBits(sample) > len(sample)*8*97/100
}

// Encode compresses data (at most MaxBlockData bytes) into one member,
// appended to dst[:0], as fast and small as the build allows (libdeflate
// when built with the libdeflate tag). roundTo > 1 pads the member up to a
// multiple of roundTo bytes (or a little more), leaving slack for later
// rewrites, never past MaxMemberSize.
func (e *Encoder) Encode(dst []byte, data []byte, roundTo int) (Member, error) {
	if e.fast == nil || len(data) == 0 || incompressible(data) {
		return e.EncodeFlexible(dst, data, roundTo)
	}
	body, ok := e.fast.compress(e.fastBody[:0], data)
	if ok {
		e.fastBody = body[:0]
	}
	if !ok || len(body) >= len(data)+5*(1+len(data)/65535) {
		return e.EncodeFlexible(dst, data, roundTo)
	}
	size := HeaderSize + len(body) + TrailerSize
	if size > MaxMemberSize {
		return e.EncodeFlexible(dst, data, roundTo)
	}
	pad := 0
	if roundTo > 1 {
		pad = (size+roundTo-1)/roundTo*roundTo - size
		for !PrefixOK(pad) {
			pad += roundTo
		}
		if size+pad > MaxMemberSize {
			pad = 0
		}
	}
	return assemblePrefixed(dst, body, crc32.ChecksumIEEE(data), uint32(len(data)), pad), nil
}

// EncodeFlexible compresses data into a member whose deflate data ends
// with a terminator, so Repad can give it any size from its minimum up.
func (e *Encoder) EncodeFlexible(dst []byte, data []byte, roundTo int) (Member, error) {
	if len(data) > MaxBlockData {
		return Member{}, fmt.Errorf("bgzf: block of %d bytes exceeds %d", len(data), MaxBlockData)
	}
	body, ok, err := e.deflateBody(data)
	if err != nil {
		return Member{}, err
	}
	if !ok {
		if HeaderSize+storedLen(len(data))+minTerminator+TrailerSize > MaxMemberSize {
			// Another tool's block size (up to 65,536 bytes) of data
			// deflate cannot shrink: no member holds it stored.
			return Member{}, fmt.Errorf("bgzf: %d bytes that do not compress do not fit in one member", len(data))
		}
		return storedMember(dst, data, roundTo), nil // deflate gains nothing
	}
	return assemble(dst, body, crc32.ChecksumIEEE(data), uint32(len(data)), 0, roundTo)
}

// EncodeChunk appends to dst the deflate data of data alone: non-final
// blocks ending byte-aligned (a sync flush), with no back-reference out of
// data, so that chunks encoded one after the other concatenate into the
// body of one member (see AssembleChunked). Stored blocks when deflate
// gains nothing.
func (e *Encoder) EncodeChunk(dst []byte, data []byte) ([]byte, error) {
	body, ok, err := e.deflateBody(data)
	if err != nil {
		return nil, err
	}
	if !ok {
		return appendStored(dst, data), nil
	}
	return append(dst, body...), nil
}

// deflateBody compresses data alone into non-final deflate blocks ending
// with a sync flush (e.body holds them until the next call); false when
// data is empty or deflate gains nothing (the caller stores it).
func (e *Encoder) deflateBody(data []byte) ([]byte, bool, error) {
	if len(data) == 0 || incompressible(data) {
		return nil, false, nil
	}
	if e.fw == nil {
		// 1 MB of tables, made in about 1 ms: only when first needed (the
		// libdeflate build needs it for flexible members alone).
		fw, err := flate.NewWriter(io.Discard, klauspostLevels[e.level])
		if err != nil {
			return nil, false, fmt.Errorf("bgzf: level %d: %w", e.level, err)
		}
		e.fw = fw
	}
	e.body.Reset()
	e.fw.Reset(&e.body)
	if _, err := e.fw.Write(data); err != nil {
		return nil, false, fmt.Errorf("bgzf: deflate: %w", err)
	}
	if err := e.fw.Flush(); err != nil {
		return nil, false, fmt.Errorf("bgzf: deflate: %w", err)
	}
	if e.body.Len() >= len(data)+5*(1+len(data)/65535) {
		return nil, false, nil
	}
	return e.body.Bytes(), true, nil
}

// AssembleChunked builds a flexible member of data (at most MaxBlockData
// bytes) whose deflate data is chunks, the chunks EncodeChunk made of
// data[:covered], followed by data[covered:] in stored blocks: only the
// bytes past covered are copied, none compressed. It fails when the member
// would exceed MaxMemberSize. roundTo pads as in Encode.
func AssembleChunked(dst, chunks, data []byte, covered, roundTo int) (Member, error) {
	if len(data) > MaxBlockData || covered < 0 || covered > len(data) {
		return Member{}, fmt.Errorf("bgzf: chunked member of %d bytes, %d covered", len(data), covered)
	}
	size := ChunkedMaxSize(len(chunks), 0, len(data)-covered)
	if size > MaxMemberSize {
		return Member{}, fmt.Errorf("bgzf: member of %d bytes exceeds %d", size, MaxMemberSize)
	}
	if roundTo > 1 {
		size = min((size+roundTo-1)/roundTo*roundTo, MaxMemberSize)
	}
	out := grow(dst, size)
	out = append(out, chunks...)
	out = appendStored(out, data[covered:])
	term := size - len(out) - TrailerSize
	putHeader(out, size)
	out = terminator(out, term)
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(data))
	out = binary.LittleEndian.AppendUint32(out, uint32(len(data)))
	return Member{Bytes: out, TermLen: term}, nil
}

// ChunkedMaxSize is the largest member AssembleChunked can make from
// chunks bytes of chunk data, n bytes more encoded as chunks first (at
// worst stored by EncodeChunk) and rest bytes stored after them, before
// padding. Above MaxMemberSize, encoding the n bytes may be wasted work.
func ChunkedMaxSize(chunks, n, rest int) int {
	return HeaderSize + chunks + storedLen(n) + storedLen(rest) + minTerminator + TrailerSize
}

// storedLen is the size of n bytes in stored deflate blocks.
func storedLen(n int) int { return n + 5*((n+65534)/65535) }

// appendStored appends data to dst as non-final stored deflate blocks.
func appendStored(dst, data []byte) []byte {
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 65535)
		dst = append(dst, 0, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
		dst = append(dst, rest[:n]...)
		rest = rest[n:]
	}
	return dst
}

// storedMember builds a flexible member whose body is stored deflate
// blocks of data, written straight into the member (no intermediate copy).
func storedMember(dst, data []byte, roundTo int) Member {
	body := storedLen(len(data))
	size := HeaderSize + body + minTerminator + TrailerSize
	if roundTo > 1 {
		size = min((size+roundTo-1)/roundTo*roundTo, MaxMemberSize)
	}
	out := grow(dst, max(size, HeaderSize+body+minTerminator+TrailerSize))
	out = appendStored(out, data)
	term := size - len(out) - TrailerSize
	if term < minTerminator {
		term = minTerminator
	}
	putHeader(out, len(out)+term+TrailerSize)
	out = terminator(out, term)
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(data))
	out = binary.LittleEndian.AppendUint32(out, uint32(len(data)))
	return Member{Bytes: out, TermLen: term}
}

// assemble builds a member around a byte-aligned non-final deflate body.
func assemble(dst, body []byte, crc, isize uint32, minSize, roundTo int) (Member, error) {
	size := HeaderSize + len(body) + minTerminator + TrailerSize
	if size > MaxMemberSize {
		return Member{}, fmt.Errorf("bgzf: member of %d bytes exceeds %d", size, MaxMemberSize)
	}
	if roundTo > 1 {
		size = (size + roundTo - 1) / roundTo * roundTo
	}
	size = min(max(size, minSize), MaxMemberSize)
	term := size - HeaderSize - len(body) - TrailerSize
	out := grow(dst, size)
	putHeader(out, size)
	out = append(out, body...)
	out = terminator(out, term)
	out = binary.LittleEndian.AppendUint32(out, crc)
	out = binary.LittleEndian.AppendUint32(out, isize)
	return Member{Bytes: out, TermLen: term}, nil
}

// assemblePrefixed builds a member around a complete deflate stream,
// padded in front with pad bytes of empty blocks (PrefixOK(pad) holds).
func assemblePrefixed(dst, stream []byte, crc, isize uint32, pad int) Member {
	size := HeaderSize + pad + len(stream) + TrailerSize
	out := grow(dst, size)
	putHeader(out, size)
	out = prefix(out, pad)
	out = append(out, stream...)
	out = binary.LittleEndian.AppendUint32(out, crc)
	out = binary.LittleEndian.AppendUint32(out, isize)
	return Member{Bytes: out, Prefixed: true, PrefixLen: pad}
}

// grow returns dst[:HeaderSize] with room for size bytes.
func grow(dst []byte, size int) []byte {
	out := dst[:0]
	if cap(out) < size {
		out = make([]byte, 0, size)
	}
	return out[:HeaderSize]
}

// ErrCannotRepad means a member cannot take the asked size without being
// recompressed (its padding is unknown, or the size is too small or cannot
// be made of empty blocks at its end of padding).
var ErrCannotRepad = errors.New("bgzf: member cannot be resized without recompressing")

// Repad returns m resized to size bytes by changing only its padding and
// header. It checks that m really has the padding it claims.
func Repad(dst []byte, m Member, size int) (Member, error) {
	if size == len(m.Bytes) {
		out := m
		out.Bytes = append(dst[:0], m.Bytes...)
		return out, nil
	}
	if size > MaxMemberSize {
		return Member{}, ErrCannotRepad
	}
	crc, isize := Trailer(m.Bytes)
	switch {
	case m.Prefixed && (m.PrefixLen == 0 || hasPrefix(m.Bytes, m.PrefixLen)):
		stream := m.Bytes[HeaderSize+m.PrefixLen : len(m.Bytes)-TrailerSize]
		pad := size - HeaderSize - len(stream) - TrailerSize
		if pad < 0 || !PrefixOK(pad) {
			return Member{}, ErrCannotRepad
		}
		return assemblePrefixed(dst, stream, crc, isize, pad), nil
	case !m.Prefixed && m.TermLen > 0 && hasTerminator(m.Bytes, m.TermLen):
		bodyEnd := len(m.Bytes) - TrailerSize - m.TermLen
		body := m.Bytes[HeaderSize:bodyEnd]
		if size < HeaderSize+len(body)+minTerminator+TrailerSize {
			return Member{}, ErrCannotRepad
		}
		return assemble(dst, body, crc, isize, size, 0)
	}
	return Member{}, ErrCannotRepad
}

// Slack returns how many bytes m could shrink by through Repad (0 when its
// padding is unknown).
func Slack(m Member) int {
	switch {
	case m.Prefixed && m.PrefixLen > 0 && hasPrefix(m.Bytes, m.PrefixLen):
		return m.PrefixLen
	case !m.Prefixed && m.TermLen > minTerminator && hasTerminator(m.Bytes, m.TermLen):
		return m.TermLen - minTerminator
	}
	return 0
}

// Decoder inflates members. Not safe for concurrent use; Decode uses a
// pool of them.
type Decoder struct {
	in *inflater // klauspost/compress, or libdeflate with the libdeflate tag
}

// NewDecoder returns a Decoder.
func NewDecoder() *Decoder { return &Decoder{in: newInflater()} }

// Decode inflates the whole member into dst (grown as needed) and checks
// its header, size, CRC32 and ISIZE. It returns the uncompressed bytes.
func (d *Decoder) Decode(dst []byte, member []byte) ([]byte, error) {
	h, err := ParseHeader(member)
	if err != nil {
		return nil, err
	}
	if h.Size != len(member) {
		return nil, fmt.Errorf("%w: BSIZE says %d bytes, member has %d", ErrFormat, h.Size, len(member))
	}
	crc, isize := Trailer(member)
	if isize > MaxBlockData {
		return nil, fmt.Errorf("%w: ISIZE %d exceeds %d", ErrFormat, isize, MaxBlockData)
	}
	n := int(isize)
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	if err := d.inflate(dst, member[h.HeaderSize:len(member)-TrailerSize]); err != nil {
		return nil, err
	}
	if got := crc32.ChecksumIEEE(dst); got != crc {
		return nil, fmt.Errorf("%w: CRC32 %08x, trailer says %08x", ErrFormat, got, crc)
	}
	return dst, nil
}

// EncoderPool hands out Encoders of one level. It keeps up to as many idle
// Encoders as the machine runs compress jobs at once (2 × GOMAXPROCS, the
// bound of gzfs's worker pool), across garbage collections: a sync.Pool
// empties at every collection, and a libdeflate compressor is 650 KiB of C
// memory, so a file created now and then (each flush needs an Encoder)
// paid an mmap, its page faults and an munmap (a TLB shootdown on every
// core) for one.
type EncoderPool struct {
	level int
	idle  chan *Encoder
}

// NewEncoderPool returns a pool for level 1..9.
func NewEncoderPool(level int) (*EncoderPool, error) {
	e, err := NewEncoder(level)
	if err != nil {
		return nil, err
	}
	p := &EncoderPool{level: level, idle: make(chan *Encoder, 2*runtime.GOMAXPROCS(0))}
	p.Put(e)
	return p, nil
}

// Get returns an Encoder; give it back with Put.
func (p *EncoderPool) Get() *Encoder {
	select {
	case e := <-p.idle:
		return e
	default:
	}
	e, _ := NewEncoder(p.level) // the level was checked by NewEncoderPool
	return e
}

// Put returns an Encoder to the pool; one over the bound is left to the
// collector (which frees its compressor).
func (p *EncoderPool) Put(e *Encoder) {
	select {
	case p.idle <- e:
	default:
	}
}

// Level returns the pool's deflate level.
func (p *EncoderPool) Level() int { return p.level }

var decoders = sync.Pool{New: func() any { return NewDecoder() }}

// Decode inflates one member with a pooled Decoder (see Decoder.Decode).
func Decode(dst []byte, member []byte) ([]byte, error) {
	d := decoders.Get().(*Decoder)
	defer decoders.Put(d)
	return d.Decode(dst, member)
}
