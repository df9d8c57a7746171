package blockfile

import (
	"errors"
	"fmt"
	"os"

	"github.com/gzfs/gzfs/bgzf"
)

// IsBGZF reports whether the first bytes of a file (at least 18) are a BGZF
// member header; an empty prefix (empty file) counts as BGZF.
func IsBGZF(prefix []byte) bool {
	if len(prefix) == 0 {
		return true
	}
	_, err := bgzf.ParseHeader(prefix)
	return err == nil
}

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
	r, err := f.record(k)
	if err != nil {
		return nil, err
	}
	member := make([]byte, r.Size)
	if _, err := f.fd.ReadAt(member, r.Offset); err != nil {
		return nil, fmt.Errorf("%s: read block %d: %w", f.name, k, err)
	}
	data, err := bgzf.Decode(nil, member)
	if err == nil && len(data) != int(r.Length) {
		err = fmt.Errorf("holds %d bytes, index says %d", len(data), r.Length)
	}
	if err != nil {
		return nil, &BlockError{File: f.name, Block: k, BackingOffset: r.Offset,
			LogicalStart: r.Logical, LogicalEnd: r.LogicalEnd(), Err: err}
	}
	return data, nil
}
