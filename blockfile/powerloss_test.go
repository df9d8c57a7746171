package blockfile

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gzfs/gzfs/bgzf"
)

// The power-loss test, in the manner of CrashMonkey and ALICE: every write,
// truncate and fsync the engine makes to its backing and journal files is
// recorded; crash images are built from everything a file had when it was
// last fsynced plus a random subset of its later writes (each kept, torn at
// a 4 KiB boundary or lost, in any combination, so later pages can land
// while earlier ones do not); the seek index (mapped, so not recorded) is
// either the newest one, describing more than the image holds, or gone.
// Opening each image must lose nothing that was fsynced, give no wrong
// byte, and answer EIO only for blocks past the fsynced size.

// recOp is one recorded change of a file.
type recOp struct {
	path string
	kind byte // 'w' write, 't' truncate, 's' fsync
	off  int64
	data []byte
}

type recorder struct {
	mu  sync.Mutex
	ops []recOp
}

func (r *recorder) add(op recOp) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// recFile records the changes made through it.
type recFile struct {
	*os.File
	r *recorder
}

func (f recFile) WriteAt(p []byte, off int64) (int, error) {
	f.r.add(recOp{path: f.Name(), kind: 'w', off: off, data: bytes.Clone(p)})
	return f.File.WriteAt(p, off)
}

func (f recFile) Truncate(size int64) error {
	f.r.add(recOp{path: f.Name(), kind: 't', off: size})
	return f.File.Truncate(size)
}

func (f recFile) Sync() error {
	f.r.add(recOp{path: f.Name(), kind: 's'})
	return f.File.Sync()
}

// recordWrites makes the Files opened from now on record their changes
// in the recorder it returns, until the end of the test.
func recordWrites(t *testing.T) *recorder {
	rec := &recorder{}
	prev := wrapFile
	t.Cleanup(func() { wrapFile = prev })
	wrapFile = func(f *os.File) backingFile { return recFile{f, rec} }
	return rec
}

// opsOf returns the changes recorded for path and the index of its last
// fsync among them (-1 if none).
func (r *recorder) opsOf(path string) (ops []recOp, lastSync int) {
	lastSync = -1
	for _, op := range r.ops {
		if op.path == path {
			ops = append(ops, op)
			if op.kind == 's' {
				lastSync = len(ops) - 1
			}
		}
	}
	return ops, lastSync
}

// image builds the content of path after a power loss; with rng nil, only
// what was fsynced is kept.
func (r *recorder) image(rng *rand.Rand, path string) []byte {
	keep := func() bool { return rng != nil && rng.IntN(2) == 0 }
	ops, lastSync := r.opsOf(path)
	var img []byte
	write := func(off int64, p []byte) {
		if end := off + int64(len(p)); end > int64(len(img)) {
			img = append(img, make([]byte, end-int64(len(img)))...)
		}
		copy(img[off:], p)
	}
	// Size changes reach the disk in order (a file system's metadata
	// journal): once one is lost, so are the later ones. A cut that was
	// lost freed no blocks, so nothing written after it into the blocks it
	// would have freed (from the first whole 4 KiB block past its size)
	// can be there either: those writes went to blocks allocated later.
	lostFrom := int64(math.MaxInt64)
	sizeLost := false
	var size int64 // the file's size as the program saw it
	for i, op := range ops {
		durable := i <= lastSync
		switch op.kind {
		case 'w':
			size = max(size, op.off+int64(len(op.data)))
			if durable {
				write(op.off, op.data)
				continue
			}
			for p := int64(0); p < int64(len(op.data)); {
				end := min((op.off+p)/4096*4096+4096-op.off, int64(len(op.data)))
				if op.off+p < lostFrom && keep() {
					write(op.off+p, op.data[p:end])
				}
				p = end
			}
		case 't':
			cut := op.off < size
			size = op.off
			if !durable && (sizeLost || !keep()) {
				sizeLost = true
				if cut {
					lostFrom = min(lostFrom, (op.off+4095)/4096*4096)
				}
				continue
			}
			if op.off <= int64(len(img)) {
				img = img[:op.off]
			} else {
				img = append(img, make([]byte, op.off-int64(len(img)))...)
			}
		}
	}
	return img
}

// abandon drops the File as a killed process would: no flush, no index
// update; its descriptors (and lock) are released.
func (f *File) abandon() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.account()
	if f.timer != nil {
		f.timer.Stop()
	}
	f.idx.Close()
	f.fd.Close()
	if f.jnl != nil {
		f.jnl.close()
	}
}

func TestPowerLoss(t *testing.T) {
	seeds, images := 16, 24 // GZFS_POWERLOSS_SEEDS=N runs more
	if n, err := strconv.Atoi(os.Getenv("GZFS_POWERLOSS_SEEDS")); err == nil {
		seeds = n
	} else if testing.Short() {
		seeds = 4
	}
	for seed := 1; seed <= seeds; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { powerLossRound(t, uint64(seed), images) })
	}
}

func powerLossRound(t *testing.T, seed uint64, images int) {
	rng := rand.New(rand.NewPCG(seed, 77))
	rec := recordWrites(t)

	dir := t.TempDir()
	path := filepath.Join(dir, "p.gz")
	opts := Options{BlockSize: MinBlockSize, Level: 1, Logger: quiet, FlushInterval: -1}
	f, err := Create(path, 0o644, opts)
	if err != nil {
		t.Fatal(err)
	}
	var model []byte
	put := func(p []byte, off int64) {
		if end := off + int64(len(p)); end > int64(len(model)) {
			model = append(model, make([]byte, end-int64(len(model)))...)
		}
		copy(model[off:], p)
	}
	data := func() []byte {
		if rng.IntN(3) == 0 {
			return randomBytes(rng, 1+rng.IntN(3*MinBlockSize))
		}
		return textish(rng, 1+rng.IntN(3*MinBlockSize))
	}
	debug := os.Getenv("GZFS_DEBUG_CHECK") != "" // trace and check every step
	trace := func(format string, args ...any) {
		if debug {
			t.Logf(format, args...)
		}
	}
	// Phase 1: anything, with fsyncs and reopens.
	for step := 0; step < 60; step++ {
		if debug {
			checkSame(t, f, model, fmt.Sprint("step ", step))
		}
		switch op := rng.IntN(10); {
		case op < 5:
			p, off := data(), rng.Int64N(int64(len(model))+MinBlockSize)
			trace("write %d@%d", len(p), off)
			if _, err := f.WriteAt(p, off); err != nil {
				t.Fatal(err)
			}
			put(p, off)
		case op < 6:
			size := rng.Int64N(int64(len(model)) + 2*MinBlockSize)
			trace("truncate %d", size)
			if err := f.Truncate(size); err != nil {
				t.Fatal(err)
			}
			if size <= int64(len(model)) {
				model = model[:size]
			} else {
				model = append(model, make([]byte, size-int64(len(model)))...)
			}
		case op < 8:
			trace("sync")
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		case op < 9:
			trace("flush")
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
		default:
			trace("reopen")
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if f, err = Open(path, opts); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	synced := bytes.Clone(model)
	// Phase 2: writes, appends and flushes (close-like), no fsync; then
	// the power goes.
	versions := [][]byte{synced}
	for step := 0; step < 12; step++ {
		p := data()
		off := rng.Int64N(int64(len(model)) + MinBlockSize)
		if _, err := f.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
		put(p, off)
		versions = append(versions, bytes.Clone(model))
		switch rng.IntN(6) {
		case 0, 1, 2:
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
		case 3:
			// The daemon is killed and started again (its flushed
			// writes are in the kernel's hands, nothing more is fsynced).
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
			f.abandon()
			if f, err = Open(path, opts); err != nil {
				t.Fatal(err)
			}
			if rng.IntN(2) == 0 { // and then fsyncs
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
				synced = bytes.Clone(model)
				versions = [][]byte{synced}
			}
		}
	}
	store, ino := f.store, f.fid.Ino
	f.abandon()
	wrapFile = func(f *os.File) backingFile { return f }

	idxPath, jnlPath := store.indexPath(ino), store.journalPath(ino)
	newestIndex, _ := os.ReadFile(idxPath)
	for i := 0; i < images; i++ {
		img, jimg := rec.image(rng, path), rec.image(rng, jnlPath)
		// In place, so that inode and birth (the sidecars' keys) stay.
		if err := os.WriteFile(path, img, 0o644); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(jnlPath, jimg, 0o644)
		// The open after a power loss comes after a reboot: the file has
		// not changed for a while (what tells a torn tail from a writer at
		// work).
		past := time.Now().Add(-time.Hour)
		os.Chtimes(path, past, past)
		indexKind := "newest index"
		if rng.IntN(2) == 0 {
			os.Remove(idxPath)
			indexKind = "no index"
		} else {
			os.WriteFile(idxPath, newestIndex, 0o644)
		}
		err := checkImage(path, opts, synced, versions)
		if err != nil {
			t.Fatalf("image %d (%s, %d backing bytes, %d journal bytes): %v", i, indexKind, len(img), len(jimg), err)
		}
	}
}

// checkImage opens a crash image and checks it against the fsynced content
// and the versions written after it.
func checkImage(path string, opts Options, synced []byte, versions [][]byte) error {
	f, err := Open(path, opts)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer f.Close()
	size := f.Size()
	minLen := len(synced)
	maxLen := 0
	for _, v := range versions {
		maxLen = max(maxLen, len(v))
	}
	if size < int64(minLen) || size > int64(maxLen) {
		return fmt.Errorf("size %d, want %d to %d", size, minLen, maxLen)
	}
	buf := make([]byte, MinBlockSize)
	for off := int64(0); off < size; off += MinBlockSize {
		n, err := f.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			if errors.Is(err, ErrCorrupt) && off >= int64(len(synced)) {
				continue // torn data that was never fsynced
			}
			return fmt.Errorf("read at %d (fsynced size %d): %w", off, len(synced), err)
		}
		for i, c := range buf[:n] {
			at := off + int64(i)
			ok := false
			for _, v := range versions {
				if at < int64(len(v)) && v[at] == c {
					ok = true
					break
				}
			}
			if !ok && !(c == 0 && at >= int64(len(synced))) {
				return fmt.Errorf("byte %d is %#x: in no version since the fsync (fsynced size %d)", at, c, len(synced))
			}
		}
	}
	return nil
}

// An open that finds an empty journal writes nothing (a read-only open of a
// log costs no fsync); since that emptiness may not be durable yet (the
// process that retired the batch may have died before its fsync), the next
// Sync fsyncs the journal before the backing file.
func TestOpenLeavesEmptyJournal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "j.gz")
	opts := Options{BlockSize: MinBlockSize, Level: 1, Logger: quiet, FlushInterval: -1}
	f, err := Create(path, 0o644, opts)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte("a line of a log\n")
	for i := 0; i < 3; i++ { // appends to a partial block: in-place batches
		if _, err := f.WriteAt(line, f.Size()); err != nil {
			t.Fatal(err)
		}
		if err := f.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	jnl := f.store.journalPath(f.fid.Ino)
	f.abandon() // killed: the last retirement was never fsynced
	if st, err := os.Stat(jnl); err != nil || st.Size() != 0 {
		t.Fatalf("journal after the batches: %v, %v", st, err)
	}

	rec := &recorder{}
	defer func(w func(*os.File) backingFile) { wrapFile = w }(wrapFile)
	wrapFile = func(f *os.File) backingFile { return recFile{f, rec} }
	if f, err = Open(path, opts); err != nil {
		t.Fatal(err)
	}
	if len(rec.ops) != 0 {
		t.Fatalf("open wrote: %+v", rec.ops)
	}
	checkSame(t, f, bytes.Repeat(line, 3), "after the reopen")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, op := range rec.ops {
		if op.kind == 's' {
			order = append(order, filepath.Base(op.path))
		}
	}
	if len(order) < 2 || order[0] != filepath.Base(jnl) || order[1] != "j.gz" {
		t.Fatalf("fsyncs: %v, want the journal before the backing file", order)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// worstImage builds the content of path after a power loss in which every
// write reached the disk but no truncate that was not fsynced did: a
// journal's batch comes back unless its retirement was made durable.
func (r *recorder) worstImage(path string) []byte {
	ops, lastSync := r.opsOf(path)
	var img []byte
	for i, op := range ops {
		switch {
		case op.kind == 'w':
			if end := op.off + int64(len(op.data)); end > int64(len(img)) {
				img = append(img, make([]byte, end-int64(len(img)))...)
			}
			copy(img[op.off:], op.data)
		case op.kind == 't' && i <= lastSync:
			if op.off <= int64(len(img)) {
				img = img[:op.off]
			} else {
				img = append(img, make([]byte, op.off-int64(len(img)))...)
			}
		}
	}
	return img
}

// A batch retired without fsync by a daemon that was then killed must not
// come back after a power loss over what the next daemon fsynced: a
// replay would cut the file to the batch's size and lose synced appends.
func TestPowerLossAfterRestart(t *testing.T) {
	rec := &recorder{}
	defer func(w func(*os.File) backingFile) { wrapFile = w }(wrapFile)
	wrapFile = func(f *os.File) backingFile { return recFile{f, rec} }
	dir := t.TempDir()
	path := filepath.Join(dir, "r.gz")
	opts := Options{BlockSize: MinBlockSize, Level: 1, Logger: quiet, FlushInterval: -1}
	f, err := Create(path, 0o644, opts)
	if err != nil {
		t.Fatal(err)
	}
	var model []byte
	appendData := func(p []byte) {
		if _, err := f.WriteAt(p, int64(len(model))); err != nil {
			t.Fatal(err)
		}
		model = append(model, p...)
		if err := f.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(5, 5))
	appendData([]byte("first line\n"))
	appendData([]byte("second line, an in-place batch never fsynced\n"))
	appendData(textish(rng, 3*MinBlockSize))
	f.abandon() // killed
	if f, err = Open(path, opts); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	store, ino := f.store, f.fid.Ino
	f.abandon() // the power goes
	wrapFile = func(f *os.File) backingFile { return f }
	jnl := store.journalPath(ino)
	if err := os.WriteFile(jnl, rec.worstImage(jnl), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, rec.worstImage(path), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkImage(path, opts, model, [][]byte{model}); err != nil {
		t.Fatal(err)
	}
}

// TestPowerLossInFirstWrite: a new file whose first write (never fsynced)
// a power loss kept only the first pages of (its first member cut short)
// opens for writing after the reboot: the cut member is set aside in the
// sidecar store and cut, and the file holds what its whole members hold
// (it stayed read-only, as foreign gzip, until removed). While the file
// may still be being written (changed within SettleTime) nothing is cut:
// it reads as gzip, read-only.
func TestPowerLossInFirstWrite(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	data := append(randomBytes(rng, 70000), textish(rng, 60000)...)
	dir := t.TempDir()
	path := filepath.Join(dir, "n.gz")
	opts := Options{Logger: quiet, FlushInterval: -1}
	f, err := Create(path, 0o644, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	store, ino := f.store, f.fid.Ino
	f.abandon()
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	first, err := bgzf.ParseHeader(full)
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{bgzf.HeaderSize, bgzf.HeaderSize + 1, 4096, 8192, first.Size - 1, first.Size + 4096} {
		os.Remove(store.indexPath(ino))
		os.Remove(store.tailPath(ino))
		if err := os.WriteFile(path, full[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		if cut < first.Size {
			// Just written: a writer may be at work. Read as gzip, cut nothing.
			if _, err := Open(path, opts); !errors.Is(err, ErrNotBGZF) {
				t.Fatalf("cut at %d, file just changed: open gave %v, want ErrNotBGZF", cut, err)
			}
			if st, _ := os.Stat(path); st.Size() != int64(cut) {
				t.Fatalf("cut at %d, file just changed: backing file is %d bytes", cut, st.Size())
			}
		}
		past := time.Now().Add(-time.Hour)
		os.Chtimes(path, past, past)
		f, err := Open(path, opts)
		if err != nil {
			t.Fatalf("cut at %d: open after the reboot: %v", cut, err)
		}
		want := int64(0)
		if cut > first.Size {
			want = int64(len(data[:61440]))
		}
		if f.Size() != want {
			t.Fatalf("cut at %d: size %d, want %d", cut, f.Size(), want)
		}
		checkSame(t, f, data[:want], fmt.Sprint("cut at ", cut))
		if _, err := f.WriteAt([]byte("after"), want); err != nil {
			t.Fatalf("cut at %d: write after the reboot: %v", cut, err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		kept, err := os.ReadFile(store.tailPath(ino))
		switch {
		case cut > bgzf.HeaderSize && cut < first.Size:
			if err != nil || !bytes.Equal(kept, full[:cut]) {
				t.Fatalf("cut at %d: the cut member's copy: %d bytes, %v", cut, len(kept), err)
			}
		case err == nil:
			t.Fatalf("cut at %d: %d bytes set aside, want none", cut, len(kept))
		}
		img, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(img))
		if err != nil {
			t.Fatalf("cut at %d: not gzip after the write: %v", cut, err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, append(bytes.Clone(data[:want]), "after"...)) {
			t.Fatalf("cut at %d: gzip -d gives %d bytes, %v", cut, len(got), err)
		}
	}
}

// TestSyncAfterRewrite: one Sync whose flush rewrites a block that an
// fsync made durable (a journaled batch, which fsyncs journal and data
// itself), then perhaps appends blocks. After a power loss that keeps
// nothing but what was fsynced, everything is there: when blocks were
// appended after the batch, Sync fsynced the data and the journal's
// emptiness (a batch coming back would cut them); when nothing was written
// after it, Sync skipped both, and the batch that comes back from the
// journal is replayed over the same bytes. Once the File lets go of the
// file (Close, Idle), no such batch can come back: another program may
// write the backing file then.
func TestSyncAfterRewrite(t *testing.T) {
	for _, c := range []struct {
		appendToo bool
		release   func(*File) error // after the Sync; nil: killed
	}{{true, nil}, {false, nil}, {false, (*File).Close}, {false, (*File).Idle}} {
		appendToo := c.appendToo
		rec := recordWrites(t)
		dir := t.TempDir()
		path := filepath.Join(dir, "ra.gz")
		opts := Options{BlockSize: MinBlockSize, Level: 1, Logger: quiet, FlushInterval: -1}
		f, err := Create(path, 0o644, opts)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(12, 13))
		model := textish(rng, 3*MinBlockSize)
		if _, err := f.WriteAt(model, 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		patch := []byte("a rewrite of fsynced bytes")
		copy(model[10:], patch)
		if _, err := f.WriteAt(patch, 10); err != nil {
			t.Fatal(err)
		}
		if appendToo {
			more := textish(rng, 2*MinBlockSize+100)
			if _, err := f.WriteAt(more, int64(len(model))); err != nil {
				t.Fatal(err)
			}
			model = append(model, more...)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		store, ino := f.store, f.fid.Ino
		if c.release != nil {
			if err := c.release(f); err != nil {
				t.Fatal(err)
			}
		}
		f.abandon()
		wrapFile = func(f *os.File) backingFile { return f }
		jnlPath := store.journalPath(ino)
		jimg := rec.image(nil, jnlPath)
		switch {
		case c.release != nil && len(jimg) != 0:
			t.Errorf("the File let go of the file with a batch of %d bytes that could come back", len(jimg))
		case c.release == nil && !appendToo && len(jimg) == 0:
			t.Error("nothing written after the batch: its retirement was fsynced anyway")
		}
		if err := os.WriteFile(path, rec.image(nil, path), 0o644); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(jnlPath, jimg, 0o644)
		os.Remove(store.indexPath(ino))
		past := time.Now().Add(-time.Hour)
		os.Chtimes(path, past, past)
		if err := checkImage(path, opts, model, [][]byte{model}); err != nil {
			t.Fatalf("append after the batch %v (journal of %d bytes after the power loss): %v", appendToo, len(jimg), err)
		}
	}
}
