package blockfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/gzfs/gzfs/bgzf"
	"github.com/gzfs/gzfs/blockindex"
	"golang.org/x/sys/unix"
)

// recover brings a freshly opened File to a consistent state: it replays a
// pending journal, then opens the index, or rebuilds it when it is missing,
// damaged or does not match the backing file.
func (f *File) recover() error {
	if err := f.replayJournal(); err != nil {
		return err
	}
	st, err := f.fd.Stat()
	if err != nil {
		return err
	}
	defer f.readSmall(st.Size())()
	f.measureBacking(st.Size())
	if f.backing == 0 {
		// Empty (a file just created): no index to read, check or remove;
		// a stale sidecar of an earlier file with this inode number fails
		// its checks when the file has one.
		x, err := blockindex.CreateMem(f.fid, f.opts.BlockSize)
		if err != nil {
			return err
		}
		x.SetState(0, st.Size(), 0)
		x.SetSyncedEnd(0)
		f.idx, f.state = x, "in memory (empty)"
		f.useIndex()
		return nil
	}
	reason := f.openIndex(st.Size())
	if reason != "" {
		f.noSidecar = reason == "missing" // nothing to remove if it ends in memory
		err := f.rebuildIndex()
		f.noSidecar = false
		if err != nil {
			return err
		}
		f.state = "rebuilt (" + reason + ")"
		if f.idx.InMemory() && reason == "missing" {
			f.state = "in memory (one block: no sidecar)"
		}
		if f.idx.Len() > 1 || reason != "missing" && f.idx.Len() > 0 {
			f.log.Info("index rebuilt from block headers", "file", f.name, "reason", reason, "blocks", f.idx.Len())
		}
	} else {
		f.state = "valid"
	}
	f.useIndex()
	return nil
}

// openUnlocked loads a File whose lock another process holds (see
// Options.ReadWhileLocked): no journal replay and nothing written; the index
// is a view of the sidecar (blockindex.OpenView) when it matches the backing
// file, or a private one built from the member headers.
func (f *File) openUnlocked() error {
	f.unlocked.Store(true)
	st, err := f.fd.Stat()
	if err != nil {
		return err
	}
	f.private = true
	if err := f.loadUnlocked(st); err != nil {
		return err
	}
	f.idleStamp = f.seen
	f.log.Debug("opened while another process writes: reading without the lock", "file", f.name, "index", f.state)
	return nil
}

// loadUnlocked (re)loads the index of an unlocked File for the backing file
// state st. Callers hold f.mu for writing (or own f, at open).
func (f *File) loadUnlocked(st os.FileInfo) error {
	defer f.readSmall(st.Size())()
	f.measureBacking(st.Size())
	if reason := f.openIndex(st.Size()); reason != "" {
		if err := f.rebuildIndex(); err != nil {
			return err
		}
		f.state = "private (" + reason + ")"
	} else {
		f.state = "view of the sidecar"
	}
	f.useIndex()
	f.seen, f.seenAt = stampOf(st), time.Now()
	f.checkedAt.Store(time.Now().UnixNano())
	return nil
}

// refreshEvery is how often an unlocked File looks at its backing file for
// another process's changes (the kernel's attribute timeout of the mount).
const refreshEvery = time.Second

// refreshIfDue lets an unlocked File follow the writer that holds the file:
// at most every refreshEvery it compares the backing file with the state
// its index describes and, if they differ, drops its cached blocks and
// loads the index again. Between two looks, a block the writer changed
// reads as its old or its new content (each is checked whole), never a mix.
func (f *File) refreshIfDue() {
	now := time.Now().UnixNano()
	last := f.checkedAt.Load()
	if now-last < int64(refreshEvery) || !f.checkedAt.CompareAndSwap(last, now) {
		return
	}
	f.refresh()
}

// Refresh makes an unlocked File look at the backing file now, as at an
// open (close-to-open): if another process changed it, the File drops its
// cached blocks and loads the index again (see Generation).
func (f *File) Refresh() {
	if f.unlocked.Load() {
		f.checkedAt.Store(time.Now().UnixNano())
		f.refresh()
	}
}

func (f *File) refresh() {
	// Most looks find nothing changed: they wait for no read in flight
	// (readers hold f.mu for reading while they inflate).
	f.mu.RLock()
	if f.closed || !f.unlocked.Load() {
		f.mu.RUnlock()
		return
	}
	if st, err := f.fd.Stat(); err == nil && f.current(st) {
		f.mu.RUnlock()
		return
	}
	f.mu.RUnlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || !f.unlocked.Load() {
		return
	}
	st, err := f.fd.Stat()
	if err != nil || f.current(st) {
		return
	}
	f.reloadUnlocked(st, "the file changed")
}

// dropPages drops the clean pages of the backing file from this machine's
// page cache before the File reads what another process changed: the
// client of a shared volume (a FUSE client such as GlusterFS's) may hold
// pages it read before the change, and timestamps too coarse to tell it so.
func (f *File) dropPages() {
	unix.Fadvise(int(f.fd.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// stampMargin is how recent a change must be for an unchanged stamp not to
// prove an unchanged file: timestamps move in ticks of the kernel's clock
// (milliseconds), so a writer can change a file twice with the same size,
// mtime and ctime; and on a shared volume they come from another
// machine's clock.
const stampMargin = time.Second

// current reports whether an unlocked File's view holds for the backing
// file state st: the stamp is the one it loaded, and the file's last change
// was well before it loaded it (see stampMargin).
func (f *File) current(st os.FileInfo) bool {
	// A view this File left itself (Idle, holding the lock until then; not
	// private) is trusted on the stamp alone: only a change within the same
	// clock tick after it, of the same size, could hide.
	return stampOf(st) == f.seen && (!f.private || st.ModTime().Before(f.seenAt.Add(-stampMargin)))
}

// reloadPauses are the waits between walks of a file another process is
// changing (a journaled batch of the writer takes a few milliseconds to
// tens of milliseconds, fsyncs included).
var reloadPauses = []time.Duration{5 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond}

// fileView is what loading an index sets: saved before a reload that may
// fail, so that the File keeps its old view.
type fileView struct {
	idx                       *blockindex.Index
	backing, size, bs, synced int64
	eof                       bool
	state                     string
	seen                      fileStamp
}

func (f *File) view() fileView {
	return fileView{f.idx, f.backing, f.size, f.blockSize, f.synced, f.eof, f.state, f.seen}
}

func (f *File) restore(v fileView) {
	f.idx, f.backing, f.size, f.blockSize, f.synced, f.eof, f.state, f.seen =
		v.idx, v.backing, v.size, v.bs, v.synced, v.eof, v.state, v.seen
}

// reloadUnlocked loads the index of an unlocked File again for backing file
// state st, keeping the old one if that fails. A walk that meets damage (a
// torn member, a stretch of no headers) most likely met the writer midway
// through a change: it is tried again after a short pause, twice, before
// its result is taken. Callers hold f.mu for writing.
func (f *File) reloadUnlocked(st os.FileInfo, why string) bool {
	old := f.view()
	restore := func() { f.restore(old) }
	f.dropPages()
	for try := 0; ; try++ {
		f.walkDamaged = false
		err := f.loadUnlocked(st)
		// A file that seems to shrink while its backing file does not is
		// one whose walk met a change in flight, too.
		shrunk := err == nil && f.size < old.size && st.Size() >= old.backing
		last := try == len(reloadPauses)
		if err == nil && (!f.walkDamaged && !shrunk || last && !(f.walkDamaged && shrunk)) {
			break // a clean walk, or after the pauses one that is not a torn shrink
		}
		if err == nil {
			f.idx.Close()
		}
		restore()
		if err != nil || last {
			// Keep the old view: its blocks fail their checks (read again
			// later) rather than the file seeming shorter than it is.
			f.log.Debug("reloading the index of a file another process writes failed", "file", f.name, "err", err)
			return false
		}
		time.Sleep(reloadPauses[try]) // the writer may be midway through a change
		f.dropPages()
		if st, err = f.fd.Stat(); err != nil {
			return false
		}
	}
	old.idx.Close()
	f.dropShared()
	f.cache.dropFile(f.id)
	f.resetStreams()
	f.generation.Add(1)
	f.private = true
	f.log.Debug("reloaded the index of a file another process writes", "file", f.name, "why", why, "index", f.state)
	return true
}

// measureBacking sets where the data members end (and whether the EOF
// marker follows them) from the backing file's size.
func (f *File) measureBacking(size int64) {
	f.backing = size
	f.eof = f.endsWithEOF(size)
	if f.eof {
		f.backing -= int64(len(bgzf.EOFMember))
	}
}

// useIndex takes the sizes of the index just opened or rebuilt. Bytes past
// the data end of the last fsync were never promised durable; an index
// that does not record it (older, or rebuilt) counts everything as fsynced.
func (f *File) useIndex() {
	f.size = f.idx.LogicalSize()
	f.blockSize = int64(f.idx.BlockSize())
	f.synced = f.backing
	if end, ok := f.idx.SyncedEnd(); ok {
		f.synced = min(end, f.backing)
	}
}

// replayJournal applies a batch left by a crash between journal commit and
// retirement.
//
// An empty journal is left as it is: opening a file writes nothing. Its
// emptiness may not be durable yet (a process that retired a batch without
// fsync and died), so the next Sync, or the journal's next batch, fsyncs it
// before anything else is made durable (jnlUnsure), as that process would
// have.
func (f *File) replayJournal() error {
	path := f.store.journalPath(f.fid.Ino)
	f.jnlUnsure = false
	st, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if st.Size() == 0 {
		f.jnlUnsure = !f.opts.ReadOnly
		return nil
	}
	j, err := openJournal(path)
	if err != nil {
		if f.opts.ReadOnly {
			return nil
		}
		return err
	}
	b, ok, stale, err := j.check(f.fid)
	if stale != "" {
		f.log.Warn("dropping a write journal left by another file", "file", f.name, "journal", path, "reason", stale)
	}
	if err != nil || !ok {
		if err == nil && !f.opts.ReadOnly {
			err = j.retire() // empty, torn before anything was applied, or stale
		}
		j.close()
		return err
	}
	if f.opts.ReadOnly {
		j.close()
		return fmt.Errorf("an interrupted write must be replayed first: open it read-write (gzfs fsck --repair)")
	}
	if err := j.apply(f.fd, b); err != nil {
		j.close()
		return fmt.Errorf("replay journal: %w", err)
	}
	if err := j.retire(); err != nil {
		j.close()
		return err
	}
	f.jnl = j
	// The index may describe the state before the batch.
	os.Remove(f.store.indexPath(f.fid.Ino))
	f.log.Warn("replayed write journal after a crash", "file", f.name, "writes", b.count)
	return nil
}

// readSmall reads a backing file of up to peekWhole bytes (most of a
// source tree) whole, so that an open's reads of its EOF marker, trailer and
// member headers are one pread instead of six. It returns the function that
// drops the copy (at the end of the open).
func (f *File) readSmall(size int64) (drop func()) {
	if size == 0 || size > peekWhole {
		return func() {}
	}
	buf := peekBufs.Get().(*[]byte)
	b := (*buf)[:size]
	if _, err := f.fd.ReadAt(b, 0); err != nil {
		peekBufs.Put(buf) // changed meanwhile: the reads go to the file
		return func() {}
	}
	f.headers = bytes.NewReader(b)
	return func() {
		f.headers = nil
		peekBufs.Put(buf)
	}
}

// headerSource is where member headers, trailers and the EOF marker are
// read from: the copy readSmall made during an open, or the backing file.
func (f *File) headerSource() io.ReaderAt {
	if f.headers != nil {
		return f.headers
	}
	return f.fd
}

// endsWithEOF reports whether the backing file of the given size ends with
// the BGZF EOF marker.
func (f *File) endsWithEOF(size int64) bool {
	n := int64(len(bgzf.EOFMember))
	if size < n {
		return false
	}
	b := make([]byte, n)
	if _, err := f.headerSource().ReadAt(b, size-n); err != nil {
		return false
	}
	return bytes.Equal(b, bgzf.EOFMember)
}

// openIndex maps the stored index and checks it against the backing file.
// It returns why the index cannot be used, or "" when it can.
func (f *File) openIndex(physical int64) string {
	var x *blockindex.Index
	var err error
	if f.unlocked.Load() {
		// The writer that holds the file changes its sidecar in place: read
		// it through a view, which keeps the header and last record of now
		// and checks every other record as it reads it.
		x, err = blockindex.OpenView(f.store.indexPath(f.fid.Ino), f.fid)
	} else {
		x, err = blockindex.Open(f.store.indexPath(f.fid.Ino), f.fid, f.opts.ReadOnly)
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "missing"
		}
		return err.Error()
	}
	why := ""
	switch tail, err := f.tailCheck(f.backing); {
	case err != nil:
		why = err.Error()
	case x.Dirty():
		why = "left dirty by an interrupted writer"
	case x.BackingSize() != physical:
		why = fmt.Sprintf("stale: backing size %d, index says %d", physical, x.BackingSize())
	case x.Len() == 0 && f.backing != 0:
		why = "no records for a non-empty file"
	case x.Tail() != tail:
		why = "stale: backing file tail changed"
	case x.Len() == 0 && x.LogicalSize() != 0:
		why = "inconsistent logical size"
	case x.Len() > 0:
		last, err := x.At(x.Len() - 1)
		if err != nil {
			why = err.Error()
		} else if last.LogicalEnd() != x.LogicalSize() || last.End() != f.backing {
			why = "inconsistent last record"
		} else if outgrows(last, x.BlockSize()) {
			why = "last block longer than the block size" // built before session 13 (see fitBlockSize)
		}
	}
	if why != "" {
		x.Close()
		return why
	}
	f.idx = x
	return ""
}

// rebuildIndex walks the member headers of the backing file and writes a
// new index. A torn last member (a crash while appending) is cut off.
func (f *File) rebuildIndex() error {
	// Built in memory; a file of more than one block spills it to a file as
	// soon as it has two records (memory stays bounded), renamed into place
	// at the end. A one-block file needs no sidecar at all.
	path := f.store.indexPath(f.fid.Ino)
	tmp := path + ".tmp"
	x, err := blockindex.CreateMem(f.fid, f.opts.BlockSize)
	if err != nil {
		return fmt.Errorf("rebuild index: %w", err)
	}
	if f.unlocked.Load() {
		tmp = "" // the store is the lock holder's: nothing is written there
	}
	spill := func() error {
		if tmp != "" {
			if err := x.Persist(tmp); err == nil || !f.opts.ReadOnly {
				return err
			}
		}
		// A read-only store, or another process's file: keep the index in
		// an unlinked temporary file.
		tf, err := os.CreateTemp("", "gzfs-index-*")
		if err != nil {
			return err
		}
		tmp = tf.Name()
		tf.Close()
		path = ""
		defer os.Remove(tmp)
		return x.Persist(tmp)
	}
	var logical int64
	var i int64
	var firstLen uint32
	var maxLen uint32 // the longest whole member's ISIZE (see fitBlockSize)
	physical := f.physical()
	damaged := 0
	// gzfs writes the block number of each member into its MTIME (see
	// bgzf.SetBlockNumber). While every member so far agrees, a damaged
	// stretch (writes lost to a power loss) is sized by the number of the
	// member after it, so that the blocks after it keep their offsets.
	hinted := true
	var ev tailEvidence // whose a torn tail is
	verdict := tailCut
	tailDamaged := int64(-1) // a damaged stretch with no data after it
	var lastDamaged blockindex.Record
	var end int64
	var werr error
	cut := false // a torn tail was cut
	if n, lg, fl, ok := f.recordsFromGZI(x, physical, spill); ok {
		// htslib's .gzi beside the file (bgzip -i) named every block: no
		// walk over the member headers. A stale one is caught at the first
		// read of a block it misplaces (its checks fail: the index is then
		// rebuilt by walking).
		end, i, logical, firstLen, hinted = physical, n, lg, fl, false
		f.log.Info("index built from the .gzi file beside it", "file", f.name, "blocks", n)
	} else {
		end, werr = bgzf.Walk(f.headerSource(), physical, func(m bgzf.MemberInfo) error {
			if i == 0 {
				firstLen = m.ISize
			}
			if !m.Damaged {
				maxLen = max(maxLen, m.ISize)
			}
			ev.add(m)
			if i == 1 && int(firstLen) >= MinBlockSize {
				x.SetBlockSize(int(firstLen))
			}
			if m.Damaged {
				damaged++
				f.logWalk(slog.LevelError, "damaged member header; its block will read as EIO", "file", f.name, "block", i, "offset", m.Offset)
			} else if hinted && i > 0 && m.ISize > 0 {
				bs := int64(x.BlockSize())
				switch want := int64(m.MTime) * bs; {
				case lastDamaged.Size > 0 && want != logical && want >= lastDamaged.Logical && want-lastDamaged.Logical <= 1<<31:
					// The damaged stretch before this member held the blocks up to
					// it (its own trailer, if any, cannot be trusted for that).
					var err error
					if i, err = setGap(x, i-1, lastDamaged, want); err != nil {
						return err
					}
					logical = want
				case m.MTime == 0 || want-logical > 1<<31:
					hinted = false // not gzfs's numbering (another tool's BGZF)
				case want < logical:
					// A stale copy of an earlier block (a member that moved; its
					// new place was not written back): it holds no bytes here.
					m.ISize = 0
				case want > logical:
					// Blocks lost between two whole members: a gap that reads as EIO.
					damaged++
					f.logWalk(slog.LevelError, "blocks missing before a member; they will read as EIO", "file", f.name, "block", i, "offset", m.Offset)
					var err error
					if i, err = setGap(x, i, blockindex.Record{Offset: m.Offset, Logical: logical}, want); err != nil {
						return err
					}
					logical = want
				}
			}
			if lastDamaged.Size > 0 && !m.Damaged && m.ISize > 0 {
				if r, err := x.At(i - 1); err == nil && r.Length == 0 {
					// A damaged stretch whose length neither its trailer nor
					// the numbering tells: the blocks after it cannot be
					// placed (serving them at a guessed offset would be wrong
					// bytes). The file reads as ending with one unreadable
					// block there.
					damaged++
					r.Length = uint32(x.BlockSize())
					if err := x.Set(i-1, r); err != nil {
						return err
					}
					logical = r.Logical + int64(r.Length)
					f.logWalk(slog.LevelError, "the blocks after a damaged stretch of unknown length cannot be placed; the file reads as ending there",
						"file", f.name, "offset", r.Offset, "unplaced_from", m.Offset)
					return errUnplaceable
				}
			}
			lastDamaged = blockindex.Record{}
			rec := blockindex.Record{Offset: m.Offset, Logical: logical, Size: uint32(m.Size), Length: m.ISize}
			if m.Damaged {
				lastDamaged = rec
				tailDamaged = i
			} else if m.ISize > 0 {
				tailDamaged = -1
			}
			if err := x.Set(i, rec); err != nil {
				return err
			}
			i++
			logical += int64(m.ISize)
			if spillDue(x, i, m.ISize, m.Offset+int64(m.Size), physical) {
				return spill()
			}
			return nil
		})
	}
	if errors.Is(werr, bgzf.ErrTornTail) && !f.opts.ForeignTailTorn {
		// Only what a gzfs append cut short leaves is cut (or, unlocked,
		// passed over); another tool's bytes after the last whole member
		// make the file foreign, read as gzip, and nothing is cut.
		st, err := f.fd.Stat()
		if err == nil {
			verdict, err = ev.judge(f.headerSource(), end, physical, settled(st))
		}
		if err == nil && verdict == tailForeign {
			err = ev.foreignErr(end, physical)
		}
		if err != nil {
			x.Close()
			removeTemp(tmp)
			return err
		}
	}
	if werr == nil && hinted && tailDamaged >= 0 {
		// Only empty members follow the damaged stretch: it is a tail torn
		// by a power loss (gzfs's numbering would place any block after it).
		r, _ := x.At(tailDamaged)
		x.Truncate(tailDamaged)
		logical = r.Logical
		werr = fmt.Errorf("%w: a damaged stretch at %d with no block after it", bgzf.ErrTornTail, r.Offset)
		end = r.Offset
	}
	if errors.Is(werr, errUnplaceable) {
		werr, tailDamaged = nil, -1 // indexed up to the damage; nothing is cut
	}
	switch {
	case werr == nil:
	case errors.Is(werr, bgzf.ErrTornTail):
		if !f.mayWrite() {
			f.logWalk(slog.LevelWarn, "backing file ends with an incomplete member; ignoring it", "file", f.name, "at", end, "err", werr)
		} else {
			if verdict != tailSetAside && end == 0 && physical > bgzf.HeaderSize {
				// A first member cut short, cut on request (fsck --repair,
				// which skips the judging): its data is all the file has
				// (gzip -dc recovers its start), so a copy is kept too.
				ev.tail = make([]byte, physical)
				if _, err := f.fd.ReadAt(ev.tail, 0); err != nil && err != io.EOF {
					x.Close()
					return fmt.Errorf("set the torn tail aside: %w", err)
				}
				verdict = tailSetAside
			}
			if verdict == tailSetAside {
				if err := f.setTailAside(end, ev.tail); err != nil {
					x.Close()
					return err
				}
			} else {
				f.log.Warn("cutting incomplete last member left by a crash", "file", f.name, "at", end, "bytes", physical-end)
			}
			if err := f.fd.Truncate(end); err != nil {
				x.Close()
				return fmt.Errorf("cut torn tail: %w", err)
			}
			cut = true
		}
		physical = end
	case errors.Is(werr, bgzf.ErrFormat):
		x.Close()
		removeTemp(tmp)
		return fmt.Errorf("%w: %v", ErrNotBGZF, werr)
	case errors.Is(werr, bgzf.ErrDamaged):
		x.Close()
		removeTemp(tmp)
		return fmt.Errorf("%w: %v", ErrCorrupt, werr)
	default:
		x.Close()
		removeTemp(tmp)
		return fmt.Errorf("rebuild index: %w", werr)
	}
	if i == 1 && int(firstLen) > f.opts.BlockSize && int(firstLen) <= bgzf.MaxBlockData {
		x.SetBlockSize(int(firstLen))
	}
	// A trailing EOF marker is not a data block.
	f.backing = physical
	f.eof = f.endsWithEOF(physical)
	if f.eof && i > 0 {
		if r, err := x.At(i - 1); err == nil && r.Length == 0 && r.Offset == physical-int64(len(bgzf.EOFMember)) {
			x.Truncate(i - 1)
			f.backing = r.Offset
		} else {
			f.eof = false
		}
	}
	if cut && !f.eof {
		// The EOF marker again after the cut, as after a failed append.
		if _, err := f.fd.WriteAt(bgzf.EOFMember, f.backing); err != nil {
			x.Close()
			return fmt.Errorf("cut torn tail: %w", err)
		}
		f.eof = true
		physical = f.physical()
	}
	if err := fitBlockSize(x, maxLen); err != nil {
		x.Close()
		removeTemp(tmp)
		return fmt.Errorf("rebuild index: %w", err)
	}
	// Dropping the EOF marker's record (or the block size settling at the
	// second member) left the uniform flag cleared: set it from the records.
	if _, err := x.CheckUniform(); err != nil {
		x.Close()
		removeTemp(tmp)
		return fmt.Errorf("rebuild index: %w", err)
	}
	tail, err := f.tailCheck(f.backing)
	if err != nil {
		x.Close()
		return err
	}
	x.SetState(logical, physical, tail)
	x.SetSyncedEnd(f.backing) // what is there may have been fsynced
	switch {
	case x.InMemory():
		if f.mayWrite() && !f.noSidecar {
			unix.Unlink(path) // a stale sidecar of a file that is one block now (os.Remove would try rmdir too)
		}
	case path != "" && tmp != "":
		if err := os.Rename(tmp, path); err != nil {
			x.Close()
			return fmt.Errorf("rebuild index: %w", err)
		}
	}
	f.idx = x
	f.walkDamaged = damaged > 0 || errors.Is(werr, bgzf.ErrTornTail)
	return nil
}

// logWalk logs what a rebuild found at level, or at debug level for an
// unlocked File: there the "damage" is most likely the writer that holds
// the file midway through a change, and the blocks it hits are read again.
func (f *File) logWalk(level slog.Level, msg string, args ...any) {
	if f.unlocked.Load() {
		level = slog.LevelDebug
	}
	f.log.Log(context.Background(), level, msg, args...)
}

// setGap records, from record i on, the damaged or missing stretch that
// starts as r (its offset, size and logical start) and holds the blocks up
// to logical offset end: one record per block, so that the arithmetic of a
// uniform file still holds (the first carries r's size, the others none;
// all read as EIO). It returns the number of the record after them.
func setGap(x *blockindex.Index, i int64, r blockindex.Record, end int64) (int64, error) {
	bs := int64(x.BlockSize())
	if end <= r.Logical { // it holds no block
		r.Length = 0
		return i + 1, x.Set(i, r)
	}
	for l := r.Logical; l < end; l += bs {
		r.Logical, r.Length = l, uint32(min(bs, end-l))
		if err := x.Set(i, r); err != nil {
			return i, err
		}
		i++
		r.Offset, r.Size = r.Offset+int64(r.Size), 0
	}
	return i, nil
}

// removeTemp removes a temporary index file, if there is one.
func removeTemp(path string) {
	if path != "" {
		os.Remove(path)
	}
}

// fitBlockSize raises the block size of a rebuilt index to hold its last
// block, and then the longest member (maxLen) of another tool's BGZF: the
// geometry lays out the last stored block, and the blocks appended after
// it, BlockSize bytes each, so a last block longer than that (a BAM file's
// 65,280-byte blocks after a short first one, which left the default
// block size) read its end as a hole of zeros, and a writer's close wrote
// those zeros. The block size stays within what one member may hold.
func fitBlockSize(x *blockindex.Index, maxLen uint32) error {
	n := x.Len()
	if n == 0 {
		return nil
	}
	last, err := x.At(n - 1)
	if err != nil {
		return err
	}
	if !outgrows(last, x.BlockSize()) {
		return nil
	}
	if last.Length > bgzf.MaxBlockData {
		return fmt.Errorf("last block of %d bytes, more than a member holds", last.Length)
	}
	x.SetBlockSize(int(max(last.Length, min(maxLen, bgzf.MaxBlockData))))
	return nil
}

// outgrows reports whether block r holds more than blockSize bytes; a
// damaged stretch (a record larger than any member: EIO, whatever its
// length) never does.
func outgrows(r blockindex.Record, blockSize int) bool {
	return r.Size <= bgzf.MaxMemberSize && int64(r.Length) > int64(blockSize)
}

// spillDue reports whether a rebuilt index in memory must get its file
// after its record number records-1, of isize bytes, ending at end: a second
// record means a file of more blocks than one, but the EOF marker at the
// very end of the file is no block (a one-block file keeps its index in
// memory).
func spillDue(x *blockindex.Index, records int64, isize uint32, end, physical int64) bool {
	return records >= 2 && x.InMemory() && !(isize == 0 && end == physical)
}

// errUnplaceable stops a rebuild at a damaged stretch of unknown length
// with blocks after it (see rebuildIndex).
var errUnplaceable = errors.New("blocks after a damaged stretch of unknown length")

// spillIndex gives an in-memory index a file once the file has more than
// one block. Callers hold f.mu for writing.
func (f *File) spillIndex() error {
	if !f.idx.InMemory() || f.idx.Len() < 2 || !f.mayWrite() {
		return nil
	}
	path := f.store.indexPath(f.fid.Ino)
	if err := f.idx.Persist(path + ".tmp"); err != nil {
		return fmt.Errorf("%s: %w", f.name, err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return fmt.Errorf("%s: index: %w", f.name, err)
	}
	return nil
}

// reloadIndex rebuilds the index from the member headers after block
// error be, unless it was rebuilt for this very state of the backing file
// already, or blocks are held in memory (they were laid out by the index in
// use). It reports whether a new index is in place.
func (f *File) reloadIndex(be *BlockError) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.broken != nil || len(f.dirty) > 0 || len(f.pending) > 0 {
		return false
	}
	st, err := f.fd.Stat()
	if err != nil {
		return false
	}
	if stampOf(st) == f.reloaded && (!f.unlocked.Load() || time.Since(f.reloadedAt) < 20*time.Millisecond) {
		// Once per state of the backing file. Unlocked, a state may be
		// seen midway through the writer's change (timestamps are coarse):
		// it is walked again after a while.
		return false
	}
	f.reloaded, f.reloadedAt = stampOf(st), time.Now()
	if f.unlocked.Load() {
		// Another process writes the file: most likely it changed this
		// block (or moved it) since the index was read.
		return f.reloadUnlocked(st, fmt.Sprintf("block %d did not match the index: %v", be.Block, be.Err))
	}
	old := f.idx
	f.measureBacking(st.Size())
	f.skipGZI = true // the .gzi beside it may be what misplaced the block: walk
	if err := f.rebuildIndex(); err != nil {
		f.idx = old
		f.log.Error("rebuilding the index after a damaged block failed", "file", f.name, "err", err)
		return false
	}
	old.Close()
	f.cache.dropFile(f.id)
	f.resetStreams()
	f.generation.Add(1)
	f.useIndex()
	f.state = "rebuilt (a block did not match the index)"
	f.log.Warn("index did not match the backing file; rebuilt it from the block headers", "file", f.name,
		"block", be.Block, "err", be.Err)
	return true
}

// setTailAside keeps a copy of the torn tail b (at end) that is most
// likely, not surely, what a power loss left of gzfs's own writes in the
// sidecar store (INO.tail, replacing an older one) before it is cut, so
// that nothing another tool wrote there is lost.
func (f *File) setTailAside(end int64, b []byte) error {
	path := f.store.tailPath(f.fid.Ino)
	if err := writeFileSync(path, b); err != nil {
		return fmt.Errorf("set the torn tail aside: %w", err)
	}
	f.log.Warn("cutting the bytes after the last whole member (most likely what a power loss left of a write); a copy is kept",
		"file", f.name, "at", end, "bytes", len(b), "copy", path)
	return nil
}
