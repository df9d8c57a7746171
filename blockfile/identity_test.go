package blockfile

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gzfs/gzfs/blockindex"
)

// TestStaleSidecarsOfReusedInode: sidecars are named by inode number, and
// filesystems reuse inode numbers at once. A file deleted outside gzfs
// leaves its index and a complete journal behind; a new file with the same
// inode number (forged here by naming the sidecars after it) and the same
// size and tail must never get that journal replayed into it, nor that
// index served: both are dropped, and the new file reads right.
func TestStaleSidecarsOfReusedInode(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	dir := t.TempDir()
	bs := MinBlockSize
	old := textish(r, 6*bs+100)
	oldPath := filepath.Join(dir, "old.gz")
	packFile(t, oldPath, old, Options{BlockSize: bs})
	of, err := Open(oldPath, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	oldID, store := of.fid, of.store
	of.Close()
	if oldID.Birth == 0 {
		t.Fatalf("the test filesystem reports no birth time or generation for %s", oldPath)
	}
	idx, err := os.ReadFile(store.indexPath(oldID.Ino))
	if err != nil {
		t.Fatal(err)
	}

	// The new file: same size and the same last block, other bytes between.
	cur := bytes.Clone(old)
	copy(cur[bs:], bytes.Repeat([]byte("NEW CONTENT "), bs/4))
	curPath := filepath.Join(dir, "new.gz")
	packFile(t, curPath, cur, Options{BlockSize: bs})
	os.Remove(oldPath) // deleted outside gzfs: its sidecars stay
	nf, err := Open(curPath, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	curID := nf.fid
	nf.Close()
	if curID.Birth == oldID.Birth {
		t.Fatalf("two files with one birth %d", curID.Birth)
	}

	// The old file's index, as if it had been written for this inode number.
	binary.LittleEndian.PutUint64(idx[56:], curID.Ino)
	binary.LittleEndian.PutUint32(idx[124:], crc32.ChecksumIEEE(idx[:124]))
	if err := os.WriteFile(store.indexPath(curID.Ino), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	// A complete journal of the old file that would overwrite the start.
	j, err := openJournal(store.journalPath(curID.Ino))
	if err != nil {
		t.Fatal(err)
	}
	garbage := bytes.Repeat([]byte{0xAA}, 100)
	stale := blockindex.FileID{Ino: curID.Ino, Birth: oldID.Birth}
	if err := j.commit(stale, 100, []extent{{off: 0, data: garbage}}, nil); err != nil {
		t.Fatal(err)
	}
	j.close()

	var logs bytes.Buffer
	f, err := Open(curPath, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, f, cur, "new file after stale sidecars")
	if st := f.Stats().IndexState; !strings.HasPrefix(st, "rebuilt") {
		t.Errorf("index state %q: the stale index was used", st)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	gzipOK(t, curPath, cur)
	if !strings.Contains(logs.String(), "dropping a write journal left by another file") {
		t.Errorf("no log line for the stale journal:\n%s", logs.String())
	}
	if st, err := os.Stat(store.journalPath(curID.Ino)); err == nil && st.Size() != 0 {
		t.Errorf("stale journal kept (%d bytes)", st.Size())
	}
}

// TestStaleCleanIndex: an index that passes every check at open (header,
// size, tail) but whose records no longer match the members (power loss
// wrote the index back, not the data) makes a read fail its member checks;
// the engine rebuilds the index and reads the right bytes, never EIO for
// sound data.
func TestStaleCleanIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	path := filepath.Join(t.TempDir(), "s.gz")
	data := textish(r, 6*MinBlockSize)
	packFile(t, path, data, Options{BlockSize: MinBlockSize})
	f, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ino, store := f.fid.Ino, f.store
	f.Close()
	idx, _ := os.ReadFile(store.indexPath(ino))
	rec := idx[blockindex.HeaderSize+2*blockindex.RecordSize:][:blockindex.RecordSize]
	binary.LittleEndian.PutUint64(rec[0:], binary.LittleEndian.Uint64(rec[0:])+7) // member 2 "moved"
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], 2)
	binary.LittleEndian.PutUint32(rec[28:], crc32.Update(crc32.ChecksumIEEE(rec[:28]), crc32.IEEETable, n[:]))
	os.WriteFile(store.indexPath(ino), idx, 0o644)

	var logs bytes.Buffer
	f, err = Open(path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st := f.Stats().IndexState; st != "valid" {
		t.Fatalf("the forged index was not taken at open: %s", st)
	}
	checkSame(t, f, data, "read through a stale index")
	if !strings.Contains(logs.String(), "index did not match the backing file") {
		t.Errorf("no log line for the rebuild:\n%s", logs.String())
	}
}
