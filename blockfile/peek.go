package blockfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

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
		return walkSize(f.headers, size, fd.Name(), settled(st))
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
	return walkSize(fd, size, fd.Name(), settled(st))
}

// peekWhole is the backing size up to which PeekSize and an open read the
// whole file (File.readSmall) instead of the index: a few members.
const peekWhole = 64 << 10

var peekBufs = sync.Pool{New: func() any { b := make([]byte, peekWhole); return &b }}

// walkSize adds up the ISIZE of every member of the BGZF stream in r.
// settled says that the file has not changed for a while (checkTornTail).
func walkSize(r io.ReaderAt, size int64, name string, settled bool) (int64, error) {
	var logical, members, first int64
	numbered := false
	end, err := bgzf.Walk(r, size, func(m bgzf.MemberInfo) error {
		switch members {
		case 0:
			first = int64(m.ISize)
		case 1:
			numbered = m.MTime == 1
		}
		logical += int64(m.ISize)
		members++
		return nil
	})
	if errors.Is(err, bgzf.ErrTornTail) {
		if err := checkTornTail(r, end, size, numbered, settled, members, logical/max(first, 1)); err != nil {
			return 0, err
		}
		return logical, nil // the engine cuts it
	}
	switch {
	case err == nil:
		return logical, nil
	case errors.Is(err, bgzf.ErrFormat):
		return 0, fmt.Errorf("%w: %v", ErrNotBGZF, err)
	}
	return 0, fmt.Errorf("%s: %w", name, err)
}

// checkTornTail looks at the bytes after the last whole member of a BGZF
// stream (from end to size, less than a member's worth, as bgzf.Walk's
// ErrTornTail says) and returns nil when they are gzfs's to cut, what an
// append of gzfs cut short leaves:
//
//   - the start of the next member with its block number k in MTIME (k:
//     the number of members before it, or of blocks before its logical
//     offset, which differ after a damaged stretch; at least 1, as Walk
//     finds no torn tail in a file without a whole first member);
//   - in a file gzfs numbered (numbered: its second member says block 1),
//     any bytes a power loss can leave there but the start of another
//     tool's gzip member;
//   - in a settled file (unchanged for settleTime: no writer at work),
//     zeros up to the next page (a power loss kept the size, or later
//     pages, but not the first).
//
// Other bytes (trailing data, a bgzip member cut by a copy or still being
// written, gzip appending) are not gzfs's: the error wraps ErrNotBGZF, and
// the file is read as gzip (foreign), not cut.
func checkTornTail(r io.ReaderAt, end, size int64, numbered, settled bool, k ...int64) error {
	buf := make([]byte, size-end)
	if _, err := r.ReadAt(buf, end); err != nil && err != io.EOF {
		return fmt.Errorf("read the tail at %d: %w", end, err)
	}
	for _, k := range k {
		if bgzf.MemberStart(buf, k) {
			return nil
		}
	}
	if numbered && !bgzf.PlainMemberStart(buf) {
		return nil
	}
	page := buf[:min(int64(len(buf)), tornPage-end%tornPage)]
	if settled && !slices.ContainsFunc(page, func(c byte) bool { return c != 0 }) {
		return nil
	}
	return fmt.Errorf("%w: the %d bytes after the last whole member (at %d) are not a gzfs write cut short", ErrNotBGZF, len(buf), end)
}

// settleTime is how long a file must be unchanged before zeros at its end,
// which a writer at work on a network file system can show for a moment,
// are taken for what a power loss left of a gzfs append.
const settleTime = 10 * time.Second

// settled reports whether the file of st has not changed for settleTime.
func settled(st os.FileInfo) bool { return time.Since(st.ModTime()) >= settleTime }

// tornPage is the unit in which a power loss keeps or loses written bytes.
const tornPage = 4096
