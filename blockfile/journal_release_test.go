package blockfile

import (
	"bytes"
	"compress/gzip"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestEmptiedJournalDurableAtRelease: a batch emptied without an fsync
// (it rewrote only unsynced bytes) must not come back after a power loss
// once the File let go of the file and another program appended to it and
// fsynced: the replay would cut that program's data. On a file system
// without one global metadata order (btrfs, network file systems) the File
// fsyncs the journal before it lets go; this test takes such a file system
// and a power loss that keeps every journal write but no emptying that was
// not fsynced.
func TestEmptiedJournalDurableAtRelease(t *testing.T) {
	defer func(f func(*os.File) bool) { orderedFS = f }(orderedFS)
	orderedFS = func(*os.File) bool { return false }
	rec := recordWrites(t)
	path := filepath.Join(t.TempDir(), "l.gz")
	opts := Options{BlockSize: MinBlockSize, Level: 6, Logger: quiet, FlushInterval: -1}
	f, err := Create(path, 0o644, opts)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	f.Append(textish(rng, 2*MinBlockSize))
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Append(textish(rng, 100)) // block 2, after the synced end
	f.Flush()
	f.Append(textish(rng, 50)) // block 2 again, in place: a batch without fsync
	f.Flush()
	store, ino := f.store, f.fid.Ino
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	wrapFile = func(f *os.File) backingFile { return f }
	jnlPath := store.journalPath(ino)

	// Another program: gzip -c more >> l.gz; fsync.
	var more bytes.Buffer
	zw := gzip.NewWriter(&more)
	zw.Write([]byte("a line another program fsynced\n"))
	zw.Close()
	o, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := o.Stat()
	o.Write(more.Bytes())
	o.Sync()
	o.Close()
	rec.add(recOp{path: path, kind: 'w', off: st.Size(), data: more.Bytes()})
	rec.add(recOp{path: path, kind: 's'})

	// Power loss: the backing file as fsynced; the journal as its changes
	// reached the disk in order, up to its last write (the last batch
	// committed) and no further unless fsynced (its emptying lost).
	os.WriteFile(path, rec.image(nil, path), 0o644)
	jops, lastSync := rec.opsOf(jnlPath)
	lastWrite := -1
	for i, op := range jops {
		if op.kind == 'w' {
			lastWrite = i
		}
	}
	var jimg []byte
	for i, op := range jops {
		if i > lastWrite && i > lastSync {
			break
		}
		switch op.kind {
		case 't':
			jimg = jimg[:min(int64(len(jimg)), op.off)]
		case 'w':
			if end := op.off + int64(len(op.data)); end > int64(len(jimg)) {
				jimg = append(jimg, make([]byte, end-int64(len(jimg)))...)
			}
			copy(jimg[op.off:], op.data)
		}
	}
	os.WriteFile(jnlPath, jimg, 0o644)
	g, err := Open(path, opts)
	if err == nil {
		g.Close()
	}
	if after, _ := os.ReadFile(path); !bytes.HasSuffix(after, more.Bytes()) {
		t.Errorf("the other program's fsynced member is gone (open: %v)", err)
	}
}
