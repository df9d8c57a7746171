package blockfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"
)

// ConvertGzip writes the uncompressed bytes of the gzip stream src (any
// gzip: one or more members) into the empty file dst as a gzfs (BGZF)
// file, and fsyncs it; dst is closed. Bytes after the last member that are
// not gzip are ignored, as gzip does; a damaged or truncated stream is an
// error wrapping ErrCorrupt and leaves dst incomplete (the caller removes
// it). The caller renames dst over the original: a crash leaves either the
// original or the complete converted file.
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

func convertInto(f *File, src io.Reader) (int64, error) {
	zr, err := gzip.NewReader(bufio.NewReaderSize(src, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("%s: %w: not gzip: %v", f.name, ErrCorrupt, err)
	}
	buf := make([]byte, 8<<20)
	var off int64
	for {
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
			return off, nil
		case errors.Is(rerr, gzip.ErrHeader) && off > 0:
			return off, nil // bytes after the last member: ignored, as gzip does
		default:
			return off, fmt.Errorf("%s: %w: at uncompressed offset %d: %v", f.name, ErrCorrupt, off, rerr)
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
