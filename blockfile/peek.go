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
// settled says that the file has not changed for a while (tailEvidence).
func walkSize(r io.ReaderAt, size int64, name string, settled bool) (int64, error) {
	var ev tailEvidence
	end, err := bgzf.Walk(r, size, func(m bgzf.MemberInfo) error {
		ev.add(m)
		return nil
	})
	if errors.Is(err, bgzf.ErrTornTail) {
		verdict, err := ev.judge(r, end, size, settled)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		if verdict == tailForeign {
			return 0, ev.foreignErr(end, size)
		}
		return ev.logical, nil // the engine cuts it
	}
	switch {
	case err == nil:
		return ev.logical, nil
	case errors.Is(err, bgzf.ErrFormat):
		return 0, fmt.Errorf("%w: %v", ErrNotBGZF, err)
	}
	return 0, fmt.Errorf("%s: %w", name, err)
}

// tailEvidence gathers, over a walk of the members, what tells whose
// bytes a torn tail (what follows the last whole member, less than a
// member's worth) is: gzfs's, left by an append cut short, which the
// engine cuts; or another tool's (trailing data, a member of bgzip or
// gzip cut by a copy or still being written), which make the file foreign
// gzip, read as gzip and never cut. PeekSize and the engine's open judge
// with it alike, so that stat and open agree.
type tailEvidence struct {
	members  int64  // whole members (a damaged stretch counts as one)
	logical  int64  // their ISIZE added up
	first    int64  // ISIZE of the first member: the block size of a file of several blocks
	numbered bool   // a member after the first carries its block number in MTIME: gzfs wrote the file
	tail     []byte // the torn tail, once judged (what setTailAside keeps)
}

// add takes the next member of the walk.
func (e *tailEvidence) add(m bgzf.MemberInfo) {
	if e.members == 0 {
		e.first = int64(m.ISize)
	} else if m.MTime != 0 && (m.MTime == uint32(e.members) || e.first > 0 && m.MTime == uint32(e.logical/e.first)) {
		e.numbered = true
	}
	e.members++
	e.logical += int64(m.ISize)
}

// next returns the numbers the member after the last could carry: the
// count of members, or the block its logical offset starts (they differ
// after a damaged stretch of several blocks).
func (e *tailEvidence) next() []int64 {
	if e.first > 0 {
		return []int64{e.members, e.logical / e.first}
	}
	return []int64{e.members}
}

// A tailVerdict says what to do with a torn tail.
type tailVerdict int

const (
	tailForeign  tailVerdict = iota // another tool's bytes: the file is foreign, nothing is cut
	tailCut                         // gzfs's: cut it
	tailSetAside                    // most likely gzfs's: cut it, keeping a copy in the sidecar store
)

// judge reads the torn tail (from end to size) and says whose it is:
//
//   - the start of the next member as gzfs writes it, its block number in
//     MTIME (1 or more: bgzip writes 0), is gzfs's;
//   - more than the first 16 bytes of the EOF marker (which gzfs appends
//     with its members; its BSIZE tells it from a member) hold no data:
//     cut;
//   - in a settled file (unchanged for SettleTime: no writer at work, as
//     after the reboot that follows a power loss), fewer bytes of a BGZF
//     header (which any BGZF writer's next member starts with) and zeros
//     (a size kept without its data) are gzfs's too; a first member cut
//     short (a new file's first write, its header the same as bgzip's) is
//     most likely gzfs's: set aside, then cut;
//   - any other start of gzip is another tool's member;
//   - in a settled file gzfs numbered, any other bytes are most likely
//     pages a power loss kept of its own writes: set aside, then cut;
//   - anything else is another tool's.
func (e *tailEvidence) judge(r io.ReaderAt, end, size int64, settled bool) (tailVerdict, error) {
	buf := make([]byte, size-end)
	if _, err := r.ReadAt(buf, end); err != nil && err != io.EOF {
		return tailForeign, fmt.Errorf("read the tail at %d: %w", end, err)
	}
	e.tail = buf
	const mtimeEnd = 8 // a header's bytes up to its MTIME
	header := false    // buf is the start of a BGZF header, as far as it goes
	for _, k := range e.next() {
		switch {
		case !bgzf.MemberStart(buf, k):
		case len(buf) >= mtimeEnd && k >= 1:
			return tailCut, nil
		default:
			header = len(buf) < mtimeEnd || k == 0
		}
	}
	zeros := !slices.ContainsFunc(buf, func(c byte) bool { return c != 0 })
	switch {
	case bgzf.EOFStart(buf) && len(buf) > bgzf.HeaderSize-2:
		return tailCut, nil
	case settled && header && e.members == 0 && len(buf) > bgzf.HeaderSize:
		// The first member cut short, data and all: gzfs's first write of
		// a new file caught by a power loss, or another BGZF writer's first
		// member (the headers are the same): keep a copy.
		return tailSetAside, nil
	case settled && (header || bgzf.EOFStart(buf) || zeros):
		return tailCut, nil
	case buf[0] == 0x1f:
		return tailForeign, nil
	case settled && e.numbered:
		return tailSetAside, nil
	}
	return tailForeign, nil
}

// foreignErr is the error of a file whose torn tail is another tool's.
func (e *tailEvidence) foreignErr(end, size int64) error {
	return fmt.Errorf("%w: the %d bytes after the last whole member (at %d) are not a gzfs write cut short", ErrNotBGZF, size-end, end)
}

// SettleTime is how long a file must be unchanged before bytes at its end
// that a writer at work could be writing (zeros a network file system
// shows for a moment, a member header's first bytes) are taken for what
// an interrupted gzfs append left.
const SettleTime = 10 * time.Second

// Settled reports whether a file last modified at mtime has not changed
// for SettleTime.
func Settled(mtime time.Time) bool { return time.Since(mtime) >= SettleTime }

func settled(st os.FileInfo) bool { return Settled(st.ModTime()) }
