package gzindex

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"
)

// DefaultSpan is the output between two checkpoints: a random read
// inflates at most this much (see the table in docs/format.md).
const DefaultSpan = 4 << 20

// BuildOptions tune Build.
type BuildOptions struct {
	Span     int64               // output between checkpoints (0: DefaultSpan)
	Progress func(in, out int64) // called now and then with the bytes consumed and produced
	Stop     func() bool         // polled now and then: true abandons the build (errStopped)
	Live     *Live               // if set, reads may use the checkpoints found so far
	readSize int                 // input read size (tests)
}

// ErrStopped is returned by Build when opts.Stop asked it to stop.
var ErrStopped = errors.New("gzindex: build stopped")

// Build reads the gzip file r (described by id) once and writes its
// checkpoint index to path (through a temporary file renamed into place).
// A file whose data stops decoding (truncated, corrupt) still gets an
// index of what decodes before the damage (see Index.Damaged).
func Build(r io.ReaderAt, id Identity, path string, opts BuildOptions) (*Index, error) {
	if opts.Span <= 0 {
		opts.Span = DefaultSpan
	}
	if opts.readSize <= 0 {
		opts.readSize = 256 << 10
	}
	z, err := newInflater(wbitsGzip)
	if err != nil {
		return nil, err
	}
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, base+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("create index: %w", err)
	}
	recs, err := os.CreateTemp(dir, base+".rec*")
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("create index: %w", err)
	}
	os.Remove(recs.Name()) // a scratch file: gone when closed
	defer recs.Close()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	b := builder{r: r, id: id, opts: opts, z: z, f: f, recs: recs,
		in: make([]byte, opts.readSize), win: make([]byte, WindowSize), winOff: HeaderSize}
	b.h = header{id: id, span: opts.Span}
	if b.cw, err = flate.NewWriter(&b.cbuf, flate.BestCompression); err != nil {
		return nil, err
	}
	if opts.Live != nil {
		opts.Live.start(&Index{h: header{id: id, span: opts.Span, logical: math.MaxInt64}, rec: recs, win: f})
		defer opts.Live.stop() // before the files close
	}
	if err := b.run(); err != nil {
		return nil, err
	}
	if opts.Live != nil {
		opts.Live.stop() // the files are rewritten and closed below
	}
	// Records after the windows.
	b.h.recOff = b.winOff
	if _, err := recs.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if _, err := f.Seek(b.winOff, io.SeekStart); err != nil {
		return nil, err
	}
	if _, err := io.Copy(f, recs); err != nil {
		return nil, fmt.Errorf("write index: %w", err)
	}
	if _, err := f.WriteAt(b.h.encode(), 0); err != nil {
		return nil, fmt.Errorf("write index: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write index: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return nil, fmt.Errorf("write index: %w", err)
	}
	ok = true
	return Open(path, id)
}

type builder struct {
	r    io.ReaderAt
	id   Identity
	opts BuildOptions
	z    *inflater
	f    *os.File
	recs *os.File
	h    header

	in             []byte
	inStart, inEnd int
	inPos          int64 // offset in the gzip file of in[inEnd]
	win            []byte
	outPos         int // next write position in win (circular)
	totIn, totOut  int64
	last           int64 // output offset of the last checkpoint
	memberIn       int64 // where the current member starts
	memberOut      int64
	winOff         int64 // where the next window goes in the index file
	cbuf           bytes.Buffer
	cw             *flate.Writer
	ordered        []byte
}

// fill reads more input when the buffer is used up; false at the end of
// the file.
func (b *builder) fill() (bool, error) {
	if b.inStart < b.inEnd {
		return true, nil
	}
	if b.inPos >= b.id.Size {
		return false, nil
	}
	n, err := b.r.ReadAt(b.in[:min(int64(len(b.in)), b.id.Size-b.inPos)], b.inPos)
	if n == 0 && err != nil {
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		return false, fmt.Errorf("read gzip file at %d: %w", b.inPos, err)
	}
	b.inStart, b.inEnd = 0, n
	b.inPos += int64(n)
	return true, nil
}

// peek returns up to n bytes of input at the current position without
// consuming them.
func (b *builder) peek(n int) []byte {
	if b.inEnd-b.inStart >= n {
		return b.in[b.inStart : b.inStart+n]
	}
	out := make([]byte, n)
	m, _ := b.r.ReadAt(out, b.totIn)
	return out[:m]
}

func (b *builder) run() error {
	for step := 0; ; step++ {
		more, err := b.fill()
		if err != nil {
			return err
		}
		if b.outPos == WindowSize {
			b.outPos = 0
		}
		c, p, dt, res, err := b.z.step(b.in[b.inStart:b.inEnd], b.win[b.outPos:], true)
		b.inStart += c
		b.totIn += int64(c)
		b.outPos += p
		b.totOut += int64(p)
		if step%256 == 0 {
			if b.opts.Progress != nil {
				b.opts.Progress(b.totIn, b.totOut)
			}
			if b.opts.Stop != nil && b.opts.Stop() {
				return ErrStopped
			}
		}
		if err != nil {
			b.damage(err)
			return nil
		}
		switch {
		case res == stepStreamEnd:
			if b.totIn >= b.id.Size {
				b.h.logical = b.totOut
				return nil
			}
			// Another member, or bytes gzip ignores ("trailing garbage").
			if next := b.peek(2); len(next) < 2 || next[0] != 0x1f || next[1] != 0x8b {
				b.h.flags |= flagGarbage
				b.h.logical = b.totOut
				return nil
			}
			if err := b.z.reset(wbitsGzip); err != nil {
				return err
			}
			b.memberIn, b.memberOut = b.totIn, b.totOut
			continue
		case res == stepNeedInput && !more:
			b.damage(fmt.Errorf("%w: the file ends inside a member (truncated)", ErrCorrupt))
			return nil
		}
		if dt&0xc0 == 0x80 && (b.h.count == 0 || b.totOut-b.last >= b.opts.Span) {
			if err := b.addPoint(dt & 7); err != nil {
				return err
			}
			b.last = b.totOut
		}
	}
}

// damage ends the index where the data stops decoding: at the error for a
// broken stream or a truncated file, at the start of the member when only
// its check value failed (its bytes cannot be trusted).
func (b *builder) damage(err error) {
	b.h.flags |= flagDamaged
	b.h.logical, b.h.damagedAt = b.totOut, b.totIn
	if msg := err.Error(); strings.Contains(msg, "incorrect data check") || strings.Contains(msg, "incorrect length check") {
		b.h.logical, b.h.damagedAt = b.memberOut, b.memberIn
	}
	// Checkpoints past the end of what reads stay out of use (find never
	// goes past logical); drop them from the count so that parse agrees.
	for b.h.count > 0 {
		var rec [RecordSize]byte
		if _, err := b.recs.ReadAt(rec[:], (b.h.count-1)*RecordSize); err != nil {
			break
		}
		p, err := decodePoint(rec[:])
		if err != nil || p.Out <= b.h.logical {
			break
		}
		b.h.count--
		b.recs.Truncate(b.h.count * RecordSize)
	}
	if b.opts.Live != nil {
		b.opts.Live.grow(b.h.count)
	}
}

// addPoint records a checkpoint at the current position with the window
// before it.
func (b *builder) addPoint(bits int) error {
	b.ordered = b.ordered[:0]
	if b.totOut >= WindowSize {
		b.ordered = append(append(b.ordered, b.win[b.outPos:]...), b.win[:b.outPos]...)
	} else {
		b.ordered = append(b.ordered, b.win[:b.outPos]...)
	}
	p := Point{Out: b.totOut, In: b.totIn, Bits: bits, winOff: b.winOff}
	if len(b.ordered) > 0 {
		b.cbuf.Reset()
		b.cw.Reset(&b.cbuf)
		b.cw.Write(b.ordered)
		if err := b.cw.Close(); err != nil {
			return err
		}
		if _, err := b.f.WriteAt(b.cbuf.Bytes(), b.winOff); err != nil {
			return fmt.Errorf("write index: %w", err)
		}
		p.winLen = uint32(b.cbuf.Len())
		p.winCRC = crc32.ChecksumIEEE(b.ordered)
		b.winOff += int64(b.cbuf.Len())
	}
	var rec [RecordSize]byte
	p.encode(rec[:])
	if _, err := b.recs.WriteAt(rec[:], b.h.count*RecordSize); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	b.h.count++
	if b.opts.Live != nil {
		b.opts.Live.grow(b.h.count)
	}
	return nil
}

// Live lets reads use an index while Build makes it: a read starts at the
// last checkpoint found so far at or before its offset (reading the
// windows and records Build has written), instead of at the start of the
// file. Safe for concurrent use.
type Live struct {
	mu sync.RWMutex
	x  *Index // nil before start and after stop
}

func (l *Live) start(x *Index) {
	l.mu.Lock()
	l.x = x
	l.mu.Unlock()
}

func (l *Live) grow(count int64) {
	l.mu.Lock()
	l.x.h.count = count
	l.mu.Unlock()
}

func (l *Live) stop() {
	l.mu.Lock()
	l.x = nil
	l.mu.Unlock()
}

// ErrNotLive is returned by Live.ReadAt when no build is running, or it
// has no checkpoint yet.
var ErrNotLive = errors.New("gzindex: no index being built")

// ReadAt reads like Index.ReadAt through the checkpoints found so far; the
// end of the data is the end of the gzip stream.
//
// Only the placing (a record and its window, read from the build's files,
// which the build keeps open while l.mu is held) is done under the lock;
// the inflate reads the gzip file alone, so a long read far ahead does not
// hold up the build (waiting to record a checkpoint) and every read queued
// behind it.
func (l *Live) ReadAt(r io.ReaderAt, p []byte, off int64) (int, error) {
	l.mu.RLock()
	if l.x == nil || l.x.h.count == 0 {
		l.mu.RUnlock()
		return 0, ErrNotLive
	}
	x := *l.x
	if off < 0 || off >= x.h.logical || len(p) == 0 {
		l.mu.RUnlock()
		return x.ReadAt(r, p, off) // the argument checks and the end: no file
	}
	rd, err := x.place(r, off)
	l.mu.RUnlock()
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	if err := rd.skipTo(off); err != nil {
		return 0, err
	}
	n, err := io.ReadFull(rd, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

// Covers returns the output offset of the last checkpoint found so far (-1
// when none).
func (l *Live) Covers() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.x == nil || l.x.h.count == 0 {
		return -1
	}
	p, err := l.x.At(l.x.h.count - 1)
	if err != nil {
		return -1
	}
	return p.Out
}
