package blockfile

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"
)

// ConvertGzip writes the uncompressed bytes of the gzip stream src (any
// gzip: one or more members) into the empty file dst as a gzfs (BGZF)
// file, and fsyncs it; dst is closed. Zero bytes after the last member
// (padding) are dropped, as gzip ignores them. Anything else that is not a
// whole member - a damaged or truncated member, a damaged member header,
// other bytes after the last member - is an error wrapping ErrCorrupt,
// since the converted file would not hold those bytes; dst is then
// incomplete (the caller removes it). The caller renames dst over the
// original: a crash leaves either the original or the complete converted
// file.
func ConvertGzip(src io.Reader, dst *os.File, name string, opts Options) (int64, error) {
	f, err := OpenFD(dst, name, opts)
	if err != nil {
		return 0, err
	}
	n, err := convertInto(f, src)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// convertInto copies the members of src one at a time (the gzip reader
// consumes exactly one member from a bufio.Reader), so that what follows
// each member can be looked at before it is accepted or refused.
func convertInto(f *File, src io.Reader) (int64, error) {
	br := bufio.NewReaderSize(src, 1<<20)
	zr, err := gzip.NewReader(br)
	if err != nil {
		return 0, fmt.Errorf("%s: %w: not gzip: %v", f.name, ErrCorrupt, err)
	}
	buf := make([]byte, 8<<20)
	var off int64
	for member := 1; ; member++ {
		zr.Multistream(false)
		for done := false; !done; {
			n, rerr := io.ReadFull(zr, buf)
			if n > 0 {
				if _, err := f.WriteAt(buf[:n], off); err != nil {
					return off, err
				}
				off += int64(n)
			}
			switch {
			case rerr == nil:
			case rerr == io.EOF, rerr == io.ErrUnexpectedEOF && n < len(buf) && zrDone(zr):
				done = true
			default:
				return off, fmt.Errorf("%s: %w: member %d, at uncompressed offset %d: %v", f.name, ErrCorrupt, member, off, rerr)
			}
		}
		head, _ := br.Peek(2)
		switch {
		case len(head) == 0:
			return off, nil
		case len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b:
			if err := zr.Reset(br); err != nil {
				return off, fmt.Errorf("%s: %w: the header of member %d (after uncompressed offset %d) is damaged: %v", f.name, ErrCorrupt, member+1, off, err)
			}
		default:
			zeros, err := onlyZeros(br)
			if err != nil {
				return off, fmt.Errorf("%s: read after member %d: %w", f.name, member, err)
			}
			if !zeros {
				return off, fmt.Errorf("%s: %w: bytes after member %d (uncompressed offset %d) are not gzip; converting would drop them", f.name, ErrCorrupt, member, off)
			}
			return off, nil
		}
	}
}

// onlyZeros reads r to its end (or its first non-zero byte) and reports
// whether every byte was zero.
func onlyZeros(r io.Reader) (bool, error) {
	buf := make([]byte, 64<<10)
	for {
		k, err := r.Read(buf)
		for _, b := range buf[:k] {
			if b != 0 {
				return false, nil
			}
		}
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// zrDone reports whether the gzip reader is at its clean end (ReadFull
// reports a short last read as io.ErrUnexpectedEOF, as it does a truncated
// stream: a further Read tells them apart).
func zrDone(zr *gzip.Reader) bool {
	var one [1]byte
	n, err := zr.Read(one[:])
	return n == 0 && err == io.EOF
}
