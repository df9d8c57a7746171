package gzindex

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// ExportGZIDX writes the index in the layout of indexed_gzip's
// export_index/import_index (version 1: "GZIDX", sizes, spacing, window
// size, then per checkpoint its compressed offset, uncompressed offset,
// bits and whether a window follows, then the 32 KiB windows), so that
// Python's indexed_gzip.IndexedGzipFile.import_index skips its own
// single-threaded build. The first checkpoint is the start of the file;
// the others carry their window (zero-filled in front when less than
// 32 KiB of output precedes them).
func (x *Index) ExportGZIDX(w io.Writer) error {
	if x.h.flags&flagDamaged != 0 {
		return fmt.Errorf("%w: the gzip file is damaged at compressed offset %d; indexed_gzip cannot read it", ErrCorrupt, x.h.damagedAt)
	}
	if x.h.span > 1<<32-1 || x.h.count > 1<<32-1 {
		return fmt.Errorf("gzindex: span or checkpoint count too large for the indexed_gzip format")
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	le := binary.LittleEndian
	hdr := make([]byte, 0, 35)
	hdr = append(hdr, "GZIDX"...)
	hdr = append(hdr, 1, 0)
	hdr = le.AppendUint64(hdr, uint64(x.h.id.Size))
	hdr = le.AppendUint64(hdr, uint64(x.h.logical))
	hdr = le.AppendUint32(hdr, uint32(x.h.span))
	hdr = le.AppendUint32(hdr, WindowSize)
	hdr = le.AppendUint32(hdr, uint32(x.h.count))
	bw.Write(hdr)
	var rec [18]byte
	for i := int64(0); i < x.h.count; i++ {
		p, err := x.At(i)
		if err != nil {
			return err
		}
		if i == 0 {
			p = Point{} // the start of the file, gzip header included
		}
		le.PutUint64(rec[0:], uint64(p.In))
		le.PutUint64(rec[8:], uint64(p.Out))
		rec[16] = byte(p.Bits)
		rec[17] = 0
		if i > 0 {
			rec[17] = 1
		}
		bw.Write(rec[:])
	}
	zeros := make([]byte, WindowSize)
	for i := int64(1); i < x.h.count; i++ {
		p, err := x.At(i)
		if err != nil {
			return err
		}
		win, err := x.windowOf(p)
		if err != nil {
			return err
		}
		bw.Write(zeros[:WindowSize-len(win)])
		if _, err := bw.Write(win); err != nil {
			return err
		}
	}
	return bw.Flush()
}
