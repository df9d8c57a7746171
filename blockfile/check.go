package blockfile

import (
	"errors"
	"io"
	"os"

	"github.com/gzfs/gzfs/bgzf"
)

// Format is what a file holds, as its first bytes tell.
type Format int

// The formats Sniff tells apart.
const (
	FormatBGZF  Format = iota // BGZF (gzfs's own, bgzip's), or empty: the engine (File) reads and writes it
	FormatGzip                // gzip but not BGZF (gzip, pigz): read-only, random access through a Foreign
	FormatOther               // not gzip at all
)

// SniffLen is how many bytes Sniff needs: one BGZF member header with its
// BC extra field.
const SniffLen = 18

// Sniff tells the format of a file from its first bytes (up to SniffLen;
// fewer only at the end of the file). An empty file is an empty gzfs file.
// The mount and the offline commands decide with it alone.
func Sniff(prefix []byte) Format {
	switch {
	case len(prefix) == 0:
		return FormatBGZF
	case !bgzf.IsGzip(prefix):
		return FormatOther
	}
	if _, err := bgzf.ParseHeader(prefix); err == nil {
		return FormatBGZF
	}
	return FormatGzip
}

// SniffFile reads the first bytes of r and tells its format.
func SniffFile(r io.ReaderAt) (Format, error) {
	var prefix [SniffLen]byte
	n, err := r.ReadAt(prefix[:], 0)
	if err != nil && err != io.EOF {
		return FormatOther, err
	}
	return Sniff(prefix[:n]), nil
}

// IsBGZF reports whether the first bytes of a file are a BGZF member header
// (or there are none: an empty file).
func IsBGZF(prefix []byte) bool { return Sniff(prefix) == FormatBGZF }

// Check inflates and verifies every stored block, calling bad for each
// damaged one. It returns the number of damaged blocks. progress, if not nil,
// is called with the backing bytes checked so far. Dirty data is not checked.
func (f *File) Check(bad func(*BlockError), progress func(done int64)) (int, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return 0, os.ErrClosed
	}
	n := f.idx.Len()
	damaged := 0
	const batch = 64
	for k0 := int64(0); k0 < n; k0 += batch {
		k1 := min(k0+batch, n) - 1
		errs := make([]error, k1-k0+1)
		done := make(chan struct{})
		for k := k0; k <= k1; k++ {
			f.workers <- struct{}{}
			go func() {
				defer func() { <-f.workers; done <- struct{}{} }()
				_, errs[k-k0] = f.checkBlock(k)
			}()
		}
		for range errs {
			<-done
		}
		for _, err := range errs {
			var be *BlockError
			switch {
			case err == nil:
			case errors.As(err, &be):
				damaged++
				if bad != nil {
					bad(be)
				}
			default:
				return damaged, err
			}
		}
		if progress != nil {
			if r, err := f.idx.At(k1); err == nil {
				progress(r.End())
			}
		}
	}
	return damaged, nil
}

// checkBlock inflates block k without the cache.
func (f *File) checkBlock(k int64) ([]byte, error) {
	r, err := f.memberRecord(k)
	if err != nil {
		return nil, err
	}
	return f.readBlock(make([]byte, r.Size), k, r, nil)
}
