package blockfile

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// syncedFile creates path holding data, fsynced, and returns it open.
func syncedFile(t *testing.T, path string, opts Options, data []byte) *File {
	t.Helper()
	f, err := Create(path, 0o644, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestResumeSeesOthersJournal: a writer (another machine, an offline
// command) commits a journaled batch and dies before it changed the
// backing file (here its first write of a member fails): the file's size
// and times are those an idle File left. That File must not resume as if
// nothing happened: it would append and fsync, and the next open would
// replay the old batch over the appended data (cut to the batch's size).
// It opens anew instead, replaying the batch first.
func TestResumeSeesOthersJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.gz")
	opts := Options{BlockSize: MinBlockSize, Level: 6, Logger: quiet, FlushInterval: -1}
	data := textish(rand.New(rand.NewPCG(1, 1)), 20*MinBlockSize)
	b := syncedFile(t, path, opts, data)
	if err := b.Idle(); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)

	fail := 0
	prev := wrapFile
	wrapFile = func(f *os.File) backingFile { return failingWrites{f, &fail} }
	a, err := Open(path, opts)
	wrapFile = prev
	if err != nil {
		t.Fatal(err)
	}
	// Random bytes: the block grows, and the members after it move (a
	// journaled batch).
	patch := randomBytes(rand.New(rand.NewPCG(3, 3)), 64)
	if _, err := a.WriteAt(patch, 5*MinBlockSize+100); err != nil {
		t.Fatal(err)
	}
	fail = 1
	if err := a.Flush(); err == nil {
		t.Fatal("the injected write failure did not fail A's flush")
	}
	a.Close()
	after, _ := os.Stat(path)
	jnl, err := os.Stat(b.store.journalPath(b.fid.Ino))
	if err != nil || jnl.Size() == 0 || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("set-up: journal %v (%v), backing %d -> %d bytes", jnl, err, before.Size(), after.Size())
	}
	if b.Resume() {
		t.Fatal("an idle File resumed over a batch another writer left in the journal")
	}
	b.Close()
	// The batch was committed: replayed, A's write is in.
	copy(data[5*MinBlockSize+100:], patch)

	b, err = Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	more := textish(rand.New(rand.NewPCG(2, 2)), 3*MinBlockSize)
	if _, err := b.Append(more); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	want := append(data, more...)
	c, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checkSame(t, c, want, "after reopen")
}

// TestResumeAfterSidecarReplaced: while a File is idle, another process
// replaces the index sidecar without changing the backing file (fsck
// --repair drops it, the next open rebuilds it). Resuming on its mapping
// of the old, now unlinked, sidecar, the File would keep its later changes
// there: the sidecar under the real name would still match the file's size
// and tail after an in-place rewrite that moved members, and the next
// writer would overwrite a block through its stale record.
func TestResumeAfterSidecarReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.gz")
	opts := Options{BlockSize: MinBlockSize, Level: 6, Logger: quiet, FlushInterval: -1}
	data := textish(rand.New(rand.NewPCG(1, 1)), 40*MinBlockSize)
	b := syncedFile(t, path, opts, data)
	if err := b.Idle(); err != nil {
		t.Fatal(err)
	}
	if err := b.store.DropIndex(b.fid.Ino); err != nil {
		t.Fatal(err)
	}
	a, err := Open(path, opts) // rebuilds the sidecar
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if b.Resume() {
		t.Fatal("an idle File resumed on a sidecar another process replaced")
	}
	b.Close()

	b, err = Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	patch := randomBytes(rand.New(rand.NewPCG(5, 5)), 6)
	if _, err := b.WriteAt(patch, 3*MinBlockSize+100); err != nil {
		t.Fatal(err)
	}
	copy(data[3*MinBlockSize+100:], patch)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	whole := textish(rand.New(rand.NewPCG(9, 9)), MinBlockSize)
	if _, err := c.WriteAt(whole, 4*MinBlockSize); err != nil {
		t.Fatal(err)
	}
	copy(data[4*MinBlockSize:], whole)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	checkSame(t, d, data, "read back")
}

// TestIndexPublishedForOtherMachines: on a file system other machines
// share, the index is fsynced before the lock is let go (Idle, Close) when
// it changed, and its dirty flag before the first batch that rewrites a
// block before the last, unless a Sync made it durable since it was set
// (appends set it without one: they change the backing file's size). On a
// local file system neither costs an fsync.
func TestIndexPublishedForOtherMachines(t *testing.T) {
	prev := localFS
	defer func() { localFS = prev }()
	data := textish(rand.New(rand.NewPCG(4, 4)), 20*MinBlockSize)
	for _, shared := range []bool{true, false} {
		localFS = func(int) bool { return !shared }
		path := filepath.Join(t.TempDir(), "p.gz")
		opts := Options{BlockSize: MinBlockSize, Level: 6, Logger: quiet, FlushInterval: -1}
		f := syncedFile(t, path, opts, data)
		f.indexSyncs = 0
		want := func(step string, n int) {
			t.Helper()
			if !shared {
				n = 0
			}
			if f.indexSyncs != n {
				t.Errorf("shared %v, %s: %d fsyncs of the index for other machines, want %d", shared, step, f.indexSyncs, n)
			}
		}
		write := func(p []byte, off int64) {
			t.Helper()
			if _, err := f.WriteAt(p, off); err != nil {
				t.Fatal(err)
			}
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		write([]byte("patch"), 3*MinBlockSize+10)
		want("first rewrite of block 3", 1)
		if !f.idx.Dirty() {
			t.Error("no dirty flag after a rewrite in place")
		}
		write([]byte("patch"), 5*MinBlockSize+10)
		want("second rewrite", 1)
		if err := f.Idle(); err != nil {
			t.Fatal(err)
		}
		want("idle", 2)
		if !f.Resume() {
			t.Fatal("no resume")
		}
		write([]byte("more"), f.Size())
		want("append", 2)
		// The append set the flag without an fsync: the next rewrite in
		// place makes it durable.
		write([]byte("patch"), 2*MinBlockSize+10)
		want("rewrite after the append", 3)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		want("close", 4)
	}
}

// TestStaleIndexWholeBlockWrite: an index older than its file that still
// matches its size and tail (a power loss kept the file's pages of an
// in-place rewrite that moved members, not the index's; or another
// machine's pages never reached the server). A whole-block write through
// it used to land on the grown neighbour (gzip -t: CRC error, both blocks
// lost). Now, block by block (members moved up to where the growth was
// absorbed, the ones after in place): a write either fails, losing
// nothing, or is right; after a failure the next open rebuilds the index
// and takes the write.
func TestStaleIndexWholeBlockWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.gz")
	const blocks = 24
	opts := Options{BlockSize: MinBlockSize, Level: 6, Logger: quiet, FlushInterval: -1}
	data := textish(rand.New(rand.NewPCG(6, 6)), blocks*MinBlockSize)
	packFile(t, path, data, opts)
	store, err := FindStore(path)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	ino := st.Sys().(*syscall.Stat_t).Ino
	oldIndex, err := os.ReadFile(store.indexPath(ino))
	if err != nil {
		t.Fatal(err)
	}
	// Random bytes in block 3: it grows, and members after it move.
	patch := randomBytes(rand.New(rand.NewPCG(7, 7)), 64)
	f, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(patch, 3*MinBlockSize+100); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	copy(data[3*MinBlockSize+100:], patch)
	after, _ := os.Stat(path)
	if after.Size() != st.Size() {
		t.Fatalf("set-up: the rewrite changed the file's size (%d -> %d)", st.Size(), after.Size())
	}
	backing, _ := os.ReadFile(path)
	whole := textish(rand.New(rand.NewPCG(8, 8)), MinBlockSize)
	refused := 0
	for k := int64(0); k < blocks; k++ {
		// The file as the rewrite left it, the index as it was before.
		if err := os.WriteFile(path, backing, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(store.indexPath(ino), oldIndex, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err = Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		if state := f.Stats().IndexState; state != "valid" {
			t.Fatalf("set-up: the old index was not taken (%s)", state)
		}
		_, werr := f.WriteAt(whole, k*MinBlockSize)
		err := errors.Join(werr, f.Close())
		want := bytes.Clone(data)
		if err == nil {
			copy(want[k*MinBlockSize:], whole)
		} else {
			refused++
		}
		if out, err := exec.Command("gzip", "-t", path).CombinedOutput(); err != nil {
			t.Fatalf("block %d: gzip -t after the write (%v): %v %s", k, err, err, out)
		}
		f, err = Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		checkSame(t, f, want, fmt.Sprintf("block %d: after the write (error %v)", k, err))
		if err != nil { // refused: after the reopen it goes through
			if _, err := f.WriteAt(whole, k*MinBlockSize); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			copy(want[k*MinBlockSize:], whole)
			f, err = Open(path, opts)
			if err != nil {
				t.Fatal(err)
			}
			checkSame(t, f, want, fmt.Sprintf("block %d: the write again after a reopen", k))
		}
		f.Close()
	}
	if refused == 0 {
		t.Error("no write through the old index was refused: the test checks nothing")
	}
	t.Logf("%d of %d whole-block writes refused", refused, blocks)
}
