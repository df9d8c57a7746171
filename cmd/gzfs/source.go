package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/gzfs/gzfs/blockfile"
)

// source is a compressed input opened for reading: with random access
// through the engine when it is BGZF, else as a decompressing stream (any
// gzip file, including stdin).
type source struct {
	name    string
	file    *blockfile.File    // nil when streaming
	foreign *blockfile.Foreign // a gzip file with a checkpoint index: random access
	stream  io.Reader          // decompressed bytes when file == nil
	stored  int64              // compressed size when known, else -1
	closer  func() error
	bar     *progress // advanced by compressed bytes (stream) or output bytes
	torn    int64     // bytes after the last whole member (engine only)
}

// openSource opens path ("-": stdin) for reading.
func openSource(cmd, path string) (*source, error) {
	if path == stdio {
		return newStreamSource(path, io.NopCloser(os.Stdin), -1)
	}
	raw, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := raw.Stat()
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.IsDir() {
		raw.Close()
		return nil, fmt.Errorf("%s is a directory", path)
	}
	prefix := make([]byte, blockfile.SniffLen)
	n, err := io.ReadFull(raw, prefix)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		raw.Close()
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	// A foreign gzip file with a checkpoint index ('gzfs index'): random
	// access (fsck streams, to check every member's CRC).
	format := blockfile.Sniff(prefix[:n])
	if cmd != "fsck" && st.Mode().IsRegular() && format == blockfile.FormatGzip {
		if store, ok := blockfile.LookupStore(path); ok {
			if x, err := blockfile.OpenForeign(raw, path, store, engineLogger(cmd, false)); err != nil {
				return nil, err
			} else if x.Indexed() {
				return &source{name: path, foreign: x, stored: st.Size(), closer: x.Close}, nil
			} else {
				x.Close()
			}
			if raw, err = os.Open(path); err != nil {
				return nil, err
			}
		}
	}
	if !st.Mode().IsRegular() || format != blockfile.FormatBGZF {
		if _, err := raw.Seek(0, io.SeekStart); err != nil {
			// A pipe or FIFO: put back what was sniffed.
			return newStreamSource(path, readCloser{io.MultiReader(bytes.NewReader(prefix[:n]), raw), raw}, -1)
		}
		return newStreamSource(path, raw, st.Size())
	}
	raw.Close()
	f, closeFn, err := openFile(cmd, path, true, false)
	if errors.Is(err, blockfile.ErrNotBGZF) {
		raw, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		return newStreamSource(path, raw, st.Size())
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &source{name: path, file: f, stored: st.Size(), closer: closeFn,
		torn: max(0, st.Size()-f.StoredSize())}, nil
}

// newStreamSource wraps r, which holds gzip data, in a decompressing source.
func newStreamSource(name string, r io.ReadCloser, stored int64) (*source, error) {
	s := &source{name: name, stored: stored, closer: r.Close}
	counted := &countingReader{r: r, bar: &s.bar}
	zr, err := blockfile.NewGzipStream(bufio.NewReaderSize(counted, ioChunk))
	if err != nil {
		r.Close()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			switch {
			case counted.n == 0:
				return nil, fmt.Errorf("%s: not in gzip format: empty input", name)
			case !bytes.HasPrefix([]byte{0x1f, 0x8b}, counted.head[:min(counted.n, 2)]):
				return nil, fmt.Errorf("%s: not in gzip format", name)
			}
			return nil, fmt.Errorf("%s: truncated: the input ends inside the gzip header (%d bytes)", name, counted.n)
		}
		return nil, fmt.Errorf("%s: not in gzip format: %w", name, err)
	}
	s.stream = zr
	return s, nil
}

// progressTotal is the total of the progress bar of a full read: the
// compressed size for a stream (-1 when unknown), else the logical size.
func (s *source) progressTotal() int64 {
	switch {
	case s.foreign != nil:
		size, _ := s.foreign.Size()
		return size
	case s.file == nil:
		return s.stored
	}
	return s.file.Size()
}

// maxMember is the largest possible BGZF member (BSIZE is 16 bits).
const maxMember = 1 << 16

// tailCuttable reports whether the bytes after the last whole member are
// few enough to be one member torn by an interrupted write, which is what
// the engine cuts off when it opens the file read-write. More than that
// means a damaged member header hides whole members after it: cutting would
// lose them.
func (s *source) tailCuttable() bool { return s.torn > 0 && s.torn < maxMember }

// tornError describes the bytes after the last whole member: the file was
// truncated, a write was interrupted, or a member header is damaged.
// A read-only open ignores them.
func (s *source) tornError() error {
	at := s.file.StoredSize()
	if s.tailCuttable() {
		return fmt.Errorf("%s: the last %d bytes (from backing offset %d) are an incomplete block: file truncated or a write interrupted; their data is lost; 'gzfs fsck --repair %s' cuts them off",
			s.name, s.torn, at, s.name)
	}
	return fmt.Errorf("%s: the %d bytes from backing offset %d do not start with a whole block: a damaged block header? the blocks after it cannot be located (bytes up to %d are readable)",
		s.name, s.torn, at, s.file.Size())
}

// close releases the source.
func (s *source) close() error { return s.closer() }

// readCloser joins a reader and the closer of what it reads from.
type readCloser struct {
	io.Reader
	io.Closer
}

// copyRange writes the length bytes at offset off of s to w (length < 0: to
// the end). Through the engine only the touched blocks are read, streamed
// (File.WriteRange); a foreign file with a checkpoint index is read chunk
// bytes at a time from the checkpoint before off; a stream is decompressed
// and skipped up to off.
func (s *source) copyRange(w io.Writer, off, length int64, chunk int) (int64, error) {
	if s.file == nil && s.foreign == nil {
		if _, err := io.CopyN(io.Discard, s.stream, off); err != nil {
			if err == io.EOF {
				return 0, nil
			}
			return 0, fmt.Errorf("read %s: %w", s.name, err)
		}
		r := s.stream
		if length >= 0 {
			r = io.LimitReader(r, length)
		}
		n, err := io.CopyBuffer(onlyWriter{w}, r, make([]byte, chunk))
		if err != nil {
			return n, fmt.Errorf("%s: %w", s.name, err)
		}
		return n, nil
	}
	if s.file != nil {
		// BGZF: the engine's streaming pipeline (large reads, blocks
		// inflated in parallel and written in order, no cache).
		done, err := s.file.WriteRange(progressWriter{w, s.bar}, off, length)
		if err != nil {
			return done, err // names the file (and block), or the write
		}
		if length < 0 || off+length > s.file.Size() {
			if s.torn > 0 {
				return done, s.tornError()
			}
		}
		return done, nil
	}
	// A foreign file with a checkpoint index. To the end, read until it
	// says EOF, not only up to its size: a damaged file's index ends where
	// the data stopped decoding, and the read there fails.
	end := int64(math.MaxInt64)
	if length >= 0 {
		end = off + length
	}
	buf := make([]byte, chunk)
	var done int64
	for off < end {
		want := int(min(int64(len(buf)), end-off))
		n, err := s.foreign.ReadAt(buf[:want], off)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return done, fmt.Errorf("write: %w", werr)
			}
			done += int64(n)
			off += int64(n)
			s.bar.add(int64(n))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return done, err // the engine names the file already
		}
	}
	return done, nil
}

// progressWriter advances a progress bar by the bytes written; a write
// error says it is one.
type progressWriter struct {
	w   io.Writer
	bar *progress
}

func (p progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.bar.add(int64(n))
	if err != nil {
		err = fmt.Errorf("write: %w", err)
	}
	return n, err
}

// countingReader advances a progress bar (which may be set after the
// reader is made) as bytes are read.
type countingReader struct {
	r    io.Reader
	bar  **progress
	n    int64   // bytes read so far
	head [2]byte // the first two of them
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n < 2 {
		copy(c.head[c.n:], p[:n])
	}
	c.n += int64(n)
	(*c.bar).add(int64(n))
	return n, err
}

// onlyWriter hides any ReadFrom of the destination so io.CopyBuffer uses our
// buffer (an *os.File ReadFrom would fall back to small copies).
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }
