package fs

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/klauspost/compress/gzip"
)

// streamHandle reads a foreign gzip file (gzip but not BGZF) by streaming
// decompression: forward reads continue the stream, a read before the
// current position starts again from the beginning. It is read-only and
// opened with FOPEN_DIRECT_IO, since st_size (the ISIZE trailer) may be
// wrong for multi-member files or files over 4 GiB.
type streamHandle struct {
	fsys *FS
	f    *os.File
	name string

	mu  sync.Mutex
	zr  *gzip.Reader
	pos int64 // uncompressed offset of zr
}

func (h *streamHandle) reset() error {
	if _, err := h.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	br := bufio.NewReaderSize(h.f, 256<<10)
	if h.zr == nil {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		h.zr = zr
	} else if err := h.zr.Reset(br); err != nil {
		return err
	}
	h.pos = 0
	return nil
}

// Read decompresses the range [off, off+len(dest)).
func (h *streamHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.zr == nil || off < h.pos {
		if err := h.reset(); err != nil {
			if errors.Is(err, io.EOF) {
				return fuse.ReadResultData(nil), 0
			}
			return nil, h.fsys.errno("gunzip", h.name, err)
		}
	}
	if off > h.pos {
		n, err := io.CopyN(io.Discard, h.zr, off-h.pos)
		h.pos += n
		if errors.Is(err, io.EOF) {
			return fuse.ReadResultData(nil), 0
		}
		if err != nil {
			return nil, h.fsys.errno("gunzip", h.name, err)
		}
	}
	n, err := io.ReadFull(h.zr, dest)
	h.pos += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, h.fsys.errno("gunzip", h.name, err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// Release closes the backing file.
func (h *streamHandle) Release(ctx context.Context) syscall.Errno {
	return toErrno(h.f.Close())
}
