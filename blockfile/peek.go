package blockfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/gzfs/gzfs/bgzf"
	"github.com/gzfs/gzfs/blockindex"
)

// ErrPendingJournal is returned by PeekSize for a file whose write journal
// still waits to be replayed: only an open read-write tells its size.
var ErrPendingJournal = errors.New("an interrupted write waits to be replayed")

// PeekSize returns the logical size of the BGZF file open as fd (any mode)
// without taking its lock, replaying a journal or writing anything: what a
// stat needs. It reads the header of the seek index in store when that
// checks out against the file (inode, birth, size, tail, not dirty), and
// otherwise walks the member headers (no inflate). A gzip file that is not
// BGZF gives ErrNotBGZF.
func PeekSize(fd *os.File, store *Store) (int64, error) {
	st, err := fd.Stat()
	if err != nil {
		return 0, err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || !st.Mode().IsRegular() {
		return 0, fmt.Errorf("%s: not a regular file", fd.Name())
	}
	size := st.Size()
	if size == 0 {
		return 0, nil
	}
	if jst, err := os.Stat(store.journalPath(sys.Ino)); err == nil && jst.Size() > 0 {
		return 0, ErrPendingJournal
	}
	f := &File{name: fd.Name(), fd: fd}
	// A small file (most of a source tree): one read of the whole file and
	// a walk in memory is cheaper than the index sidecar.
	defer f.readSmall(size)()
	if f.headers != nil {
		return walkSize(f.headers, size, fd.Name())
	}
	f.fid = backingID(int(fd.Fd()), sys.Ino)
	dataEnd := size
	if f.endsWithEOF(size) {
		dataEnd -= int64(len(bgzf.EOFMember))
	}
	if h, err := blockindex.Peek(store.indexPath(sys.Ino), f.fid); err == nil && !h.Dirty && h.Backing == size {
		if tail, err := f.tailCheck(dataEnd); err == nil && tail == h.Tail {
			return h.Logical, nil
		}
	}
	return walkSize(fd, size, fd.Name())
}

// peekWhole is the backing size up to which PeekSize and an open read the
// whole file (File.readSmall) instead of the index: a few members.
const peekWhole = 64 << 10

var peekBufs = sync.Pool{New: func() any { b := make([]byte, peekWhole); return &b }}

// walkSize adds up the ISIZE of every member of the BGZF stream in r.
func walkSize(r io.ReaderAt, size int64, name string) (int64, error) {
	var logical int64
	_, err := bgzf.Walk(r, size, func(m bgzf.MemberInfo) error {
		logical += int64(m.ISize)
		return nil
	})
	switch {
	case err == nil, errors.Is(err, bgzf.ErrTornTail): // the engine cuts a torn tail
		return logical, nil
	case errors.Is(err, bgzf.ErrFormat):
		return 0, fmt.Errorf("%w: %v", ErrNotBGZF, err)
	}
	return 0, fmt.Errorf("%s: %w", name, err)
}
