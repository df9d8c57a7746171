package blockfile

import (
	"fmt"
	"io"
	"os"
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

// convertInto copies the members of src (gzipStream's rule for what
// follows a member) and then checks what follows the last one: a
// conversion keeps nothing of it, so only zeros may be dropped.
func convertInto(f *File, src io.Reader) (int64, error) {
	g, err := newGzipStream(src)
	if err != nil {
		return 0, fmt.Errorf("%s: %w: not gzip: %v", f.name, ErrCorrupt, err)
	}
	buf := make([]byte, 8<<20)
	var off int64
	for {
		n, rerr := fill(g, buf)
		if n > 0 {
			if _, err := f.WriteAt(buf[:n], off); err != nil {
				return off, err
			}
			off += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return off, fmt.Errorf("%s: %w: at uncompressed offset %d: %v", f.name, ErrCorrupt, off, rerr)
		}
	}
	zeros, err := onlyZeros(g.br)
	if err != nil {
		return off, fmt.Errorf("%s: read after the last member: %w", f.name, err)
	}
	if !zeros {
		return off, fmt.Errorf("%s: %w: bytes after the last member (uncompressed offset %d) are not gzip; converting would drop them", f.name, ErrCorrupt, off)
	}
	return off, nil
}

// fill reads r until buf is full or r fails, and returns r's error as it
// is (io.EOF at the end).
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
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
