package bgzf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress"
	"github.com/klauspost/compress/flate"
)

// Member is an encoded member and the length of its terminator, which
// Repad needs to resize it without recompressing.
type Member struct {
	Bytes   []byte
	TermLen int
}

// Encoder compresses blocks into members. It is not safe for concurrent
// use; take one per goroutine from an EncoderPool.
type Encoder struct {
	level int
	fw    *flate.Writer
	body  bytes.Buffer
}

// NewEncoder returns an encoder for deflate level 1..9.
func NewEncoder(level int) (*Encoder, error) {
	fw, err := flate.NewWriter(io.Discard, level)
	if err != nil {
		return nil, fmt.Errorf("bgzf: level %d: %w", level, err)
	}
	return &Encoder{level: level, fw: fw}, nil
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

// Encode compresses data (at most MaxBlockData bytes) into one member
// appended to dst[:0]. minSize asks for a member of at least that many bytes
// (padding with the terminator); roundTo > 1 rounds the member size up to a
// multiple of it, leaving slack for later rewrites (never past MaxMemberSize).
func (e *Encoder) Encode(dst []byte, data []byte, minSize, roundTo int) (Member, error) {
	if len(data) > MaxBlockData {
		return Member{}, fmt.Errorf("bgzf: block of %d bytes exceeds %d", len(data), MaxBlockData)
	}
	e.body.Reset()
	stored := len(data) == 0 || incompressible(data)
	if !stored {
		e.fw.Reset(&e.body)
		if _, err := e.fw.Write(data); err != nil {
			return Member{}, fmt.Errorf("bgzf: deflate: %w", err)
		}
		if err := e.fw.Flush(); err != nil {
			return Member{}, fmt.Errorf("bgzf: deflate: %w", err)
		}
		if e.body.Len() >= len(data)+5*(1+len(data)/65535) {
			stored = true
			e.body.Reset()
		}
	}
	if stored {
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 65535)
			var hdr [5]byte
			binary.LittleEndian.PutUint16(hdr[1:3], uint16(n))
			binary.LittleEndian.PutUint16(hdr[3:5], ^uint16(n))
			e.body.Write(hdr[:])
			e.body.Write(rest[:n])
			rest = rest[n:]
		}
	}
	return assemble(dst, e.body.Bytes(), crc32.ChecksumIEEE(data), uint32(len(data)), minSize, roundTo)
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
	out := dst[:0]
	if cap(out) < size {
		out = make([]byte, 0, size)
	}
	out = out[:HeaderSize]
	putHeader(out, size)
	out = append(out, body...)
	out = terminator(out, term)
	out = binary.LittleEndian.AppendUint32(out, crc)
	out = binary.LittleEndian.AppendUint32(out, isize)
	return Member{Bytes: out, TermLen: term}, nil
}

// ErrCannotRepad means a member cannot take the asked size without being
// recompressed (its terminator is unknown, or the size is too small).
var ErrCannotRepad = errors.New("bgzf: member cannot be resized without recompressing")

// Repad returns m resized to size bytes by changing only its terminator and
// header. It checks that m really ends with the terminator m.TermLen says.
func Repad(dst []byte, m Member, size int) (Member, error) {
	if size == len(m.Bytes) {
		return Member{Bytes: append(dst[:0], m.Bytes...), TermLen: m.TermLen}, nil
	}
	if !hasTerminator(m.Bytes, m.TermLen) {
		return Member{}, ErrCannotRepad
	}
	bodyEnd := len(m.Bytes) - TrailerSize - m.TermLen
	body := m.Bytes[HeaderSize:bodyEnd]
	if size < HeaderSize+len(body)+minTerminator+TrailerSize || size > MaxMemberSize {
		return Member{}, ErrCannotRepad
	}
	crc, isize := Trailer(m.Bytes)
	return assemble(dst, body, crc, isize, size, 0)
}

// Slack returns how many bytes m could shrink by through Repad (0 when its
// terminator is unknown).
func Slack(m Member) int {
	if m.TermLen <= minTerminator || !hasTerminator(m.Bytes, m.TermLen) {
		return 0
	}
	return m.TermLen - minTerminator
}

// Decoder inflates members. Not safe for concurrent use; see DecoderPool.
type Decoder struct {
	fr    io.Reader
	reset flate.Resetter
	br    bytes.Reader
}

// NewDecoder returns a Decoder.
func NewDecoder() *Decoder {
	fr := flate.NewReader(bytes.NewReader(nil))
	reset, ok := fr.(flate.Resetter)
	if !ok {
		panic("bgzf: flate reader cannot be reset")
	}
	return &Decoder{fr: fr, reset: reset}
}

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
	d.br.Reset(member[h.HeaderSize : len(member)-TrailerSize])
	if err := d.reset.Reset(&d.br, nil); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if _, err := io.ReadFull(d.fr, dst); err != nil {
		return nil, fmt.Errorf("%w: inflate: %v", ErrFormat, err)
	}
	var one [1]byte
	if k, err := d.fr.Read(one[:]); k != 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			return nil, fmt.Errorf("%w: more data than ISIZE %d", ErrFormat, isize)
		}
		return nil, fmt.Errorf("%w: inflate: %v", ErrFormat, err)
	}
	if got := crc32.ChecksumIEEE(dst); got != crc {
		return nil, fmt.Errorf("%w: CRC32 %08x, trailer says %08x", ErrFormat, got, crc)
	}
	return dst, nil
}

// EncoderPool hands out Encoders of one level.
type EncoderPool struct {
	level int
	pool  sync.Pool
}

// NewEncoderPool returns a pool for level 1..9.
func NewEncoderPool(level int) (*EncoderPool, error) {
	if _, err := NewEncoder(level); err != nil {
		return nil, err
	}
	return &EncoderPool{level: level}, nil
}

// Get returns an Encoder; give it back with Put.
func (p *EncoderPool) Get() *Encoder {
	if e, ok := p.pool.Get().(*Encoder); ok {
		return e
	}
	e, _ := NewEncoder(p.level) // the level was checked by NewEncoderPool
	return e
}

// Put returns an Encoder to the pool.
func (p *EncoderPool) Put(e *Encoder) { p.pool.Put(e) }

// Level returns the pool's deflate level.
func (p *EncoderPool) Level() int { return p.level }

var decoders = sync.Pool{New: func() any { return NewDecoder() }}

// Decode inflates one member with a pooled Decoder (see Decoder.Decode).
func Decode(dst []byte, member []byte) ([]byte, error) {
	d := decoders.Get().(*Decoder)
	defer decoders.Put(d)
	return d.Decode(dst, member)
}
