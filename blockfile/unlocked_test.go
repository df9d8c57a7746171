package blockfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gzfs/gzfs/bgzf"
)

// versionBlock fills b, block k of the file, as writer version v leaves
// it: a 24-byte head (k, v, random) and then bytes that depend only on the
// head, compressible or (random) not, so that rewrites change the member
// sizes and move the members after them.
func versionBlock(b []byte, k int64, v uint64, random bool) {
	var r uint64
	if random {
		r = 1
	}
	binary.LittleEndian.PutUint64(b[0:], uint64(k))
	binary.LittleEndian.PutUint64(b[8:], v)
	binary.LittleEndian.PutUint64(b[16:], r)
	fillBody(b[24:], k, v, random)
}

func fillBody(b []byte, k int64, v uint64, random bool) {
	if random {
		rng := rand.New(rand.NewPCG(uint64(k), v))
		for j := 0; j+8 <= len(b); j += 8 {
			binary.LittleEndian.PutUint64(b[j:], rng.Uint64())
		}
		return
	}
	for j := 0; j+8 <= len(b); j += 8 {
		binary.LittleEndian.PutUint64(b[j:], uint64(k)<<32|v)
	}
}

// checkVersionBlock reports whether b is block k whole, as some version
// no newer than maxV wrote it.
func checkVersionBlock(b []byte, k int64, maxV uint64) bool {
	if binary.LittleEndian.Uint64(b[0:]) != uint64(k) {
		return false
	}
	v := binary.LittleEndian.Uint64(b[8:])
	if v > maxV {
		return false
	}
	want := make([]byte, len(b)-24)
	fillBody(want, k, v, binary.LittleEndian.Uint64(b[16:]) == 1)
	return string(want) == string(b[24:])
}

// TestUnlockedReaderFollowsWriter opens a reader while a writer holds the
// file (Options.ReadWhileLocked, as a second machine's gzfs does on a
// shared volume) and reads whole blocks while the writer rewrites them in
// place, grows them (moving the members after them, through the journal)
// and appends. Every block the reader gets must be one version of that
// block, whole; the reader follows the writer's appends; its first write
// waits for the lock and then reloads the file.
func TestUnlockedReaderFollowsWriter(t *testing.T) { testReaderFollowsWriter(t, false) }

// TestIdleReaderFollowsWriter is the same with a reader that held the lock
// and let go of it (Idle, as every read-only open through the mount does)
// before the writer took it.
func TestIdleReaderFollowsWriter(t *testing.T) { testReaderFollowsWriter(t, true) }

func testReaderFollowsWriter(t *testing.T, idle bool) {
	const bs = 8192
	const blocks = 64
	path, store, w := versionedFile(t, bs, blocks)
	t.Cleanup(func() { w.Close() })
	buf := make([]byte, bs)
	var err error
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	var r *File
	if idle {
		// The reader takes the file first and lets go of it; the writer
		// then takes the lock.
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if r, err = Open(path, Options{Store: store, ReadWhileLocked: true, Cache: NewCache(4 * bs)}); err != nil {
			t.Fatal(err)
		}
		if err := r.Idle(); err != nil {
			t.Fatal(err)
		}
		if w, err = Open(path, Options{BlockSize: bs, Level: 1, Store: store}); err != nil {
			t.Fatal(err)
		}
	}

	// The writer holds the lock: a plain open fails, a reader opens unlocked.
	if _, err := Open(path, Options{Store: store}); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Fatalf("second writer: got %v, want EWOULDBLOCK", err)
	}
	if !idle {
		if r, err = Open(path, Options{Store: store, ReadWhileLocked: true, Cache: NewCache(4 * bs)}); err != nil {
			t.Fatal(err)
		}
	}
	defer r.Close()
	if got := r.Size(); got != blocks*bs {
		t.Fatalf("reader size %d, want %d", got, blocks*bs)
	}

	var version atomic.Uint64 // the newest version the writer has started
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads, eio, wrong atomic.Int64
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 7))
			p := make([]byte, 3*bs)
			for !stop.Load() {
				size := r.Size() / bs
				k := rng.Int64N(size)
				n := min(int64(1+rng.IntN(3)), size-k)
				got, err := r.ReadAt(p[:n*bs], k*bs)
				maxV := version.Load()
				reads.Add(1)
				if err != nil && !errors.Is(err, io.EOF) {
					var be *BlockError
					if !errors.As(err, &be) {
						t.Errorf("read block %d: %v", k, err)
						return
					}
					eio.Add(1)
					continue
				}
				for j := int64(0); j < int64(got)/bs; j++ {
					if !checkVersionBlock(p[j*bs:(j+1)*bs], k+j, maxV) {
						wrong.Add(1)
						r.mu.RLock()
						rec, rerr := r.idx.At(k + j)
						t.Errorf("block %d: wrong bytes (head %x); index: %+v %v, %d records, uniform %v, size %d, state %s", k+j, p[j*bs:j*bs+24], rec, rerr, r.idx.Len(), r.idx.Uniform(), r.size, r.state)
						r.mu.RUnlock()
					}
				}
			}
		}(uint64(g))
	}

	rng := rand.New(rand.NewPCG(3, 3))
	size := int64(blocks)
	// At least 3 s, and on until the readers made 100 reads (a slow
	// machine under -race), at most a minute.
	deadline, limit := time.Now().Add(3*time.Second), time.Now().Add(time.Minute)
	for v := uint64(1); time.Now().Before(deadline) || reads.Load() < 100 && time.Now().Before(limit); v++ {
		version.Store(v)
		for i := 0; i < 8; i++ {
			k := rng.Int64N(size)
			versionBlock(buf, k, v, rng.IntN(3) == 0)
			if _, err := w.WriteAt(buf, k*bs); err != nil {
				t.Fatal(err)
			}
		}
		if v%4 == 0 { // and the file grows
			versionBlock(buf, size, v, false)
			if _, err := w.Append(buf); err != nil {
				t.Fatal(err)
			}
			size++
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d reads, %d EIO, %d wrong; writer ended at %d blocks", reads.Load(), eio.Load(), wrong.Load(), size)
	if reads.Load() < 100 {
		t.Fatalf("only %d reads", reads.Load())
	}
	if eio.Load()*10 > reads.Load() {
		t.Errorf("%d of %d reads failed: the reader should mostly get through", eio.Load(), reads.Load())
	}

	// The reader follows the writer's appends (within refreshEvery; polled
	// with room for a slow machine).
	for end := time.Now().Add(refreshEvery + 5*time.Second); r.Size() != size*bs && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := r.Size(); got != size*bs {
		t.Fatalf("reader size after the writer's appends: %d, want %d", got, size*bs)
	}
	p := make([]byte, bs)
	if _, err := r.ReadAt(p, (size-1)*bs); err != nil || !checkVersionBlock(p, size-1, version.Load()) {
		t.Fatalf("last block: %v", err)
	}

	// Writing needs the lock: refused while the writer holds it, taken
	// once it closes (the reader reloads what the writer left).
	if _, err := r.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Fatalf("write while another holds the lock: got %v, want EWOULDBLOCK", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for k := int64(0); k < size; k++ {
		if _, err := r.ReadAt(p, k*bs); err != nil || !checkVersionBlock(p, k, version.Load()) {
			t.Fatalf("block %d after the writer closed: %v", k, err)
		}
	}
	versionBlock(buf, 1, 999, false)
	if _, err := r.WriteAt(buf, bs); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	v, err := Open(path, Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if v.Size() != size*bs {
		t.Fatalf("size after the reader wrote: %d, want %d", v.Size(), size*bs)
	}
	for k := int64(0); k < size; k++ {
		if _, err := v.ReadAt(p, k*bs); err != nil || !checkVersionBlock(p, k, max(999, version.Load())) {
			t.Fatalf("block %d at the end: %v (head %x)", k, err, p[:24])
		}
	}
	if _, err := v.ReadAt(p, bs); err != nil || binary.LittleEndian.Uint64(p[8:]) != 999 {
		t.Fatalf("the reader's write is lost")
	}
}

// TestForeignMTimeReads: other tools may write a time into the MTIME of
// every BGZF member; such members are not taken for misplaced gzfs blocks
// (the block-number check covers numbers below maxBlockNumber only).
func TestForeignMTimeReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.gz")
	w, err := Create(path, 0o644, Options{BlockSize: 8192})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 5*8192+100)
	for i := range data {
		data[i] = byte(i * 7 / 13)
	}
	if _, err := w.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := fd.Stat()
	var offs []int64
	bgzf.Walk(fd, st.Size(), func(m bgzf.MemberInfo) error {
		offs = append(offs, m.Offset)
		return nil
	})
	for _, off := range offs {
		var stamp [4]byte
		binary.LittleEndian.PutUint32(stamp[:], 1_700_000_000) // 2023
		fd.WriteAt(stamp[:], off+4)
	}
	fd.Close()
	r, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make([]byte, len(data))
	if n, err := r.ReadAt(got, 0); n != len(data) || (err != nil && !errors.Is(err, io.EOF)) || string(got) != string(data) {
		t.Fatalf("read %d bytes, %v; equal %v", n, err, string(got) == string(data))
	}
}

// TestIdleReadsThroughView: Idle copies nothing of the index (the first
// read-only open of a huge file once copied its whole sidecar into a
// temporary file): the idle File reads through a view of the sidecar's
// mapping, maps no copy, and reads the file right, also after it was taken
// back, appended to and left idle again.
func TestIdleReadsThroughView(t *testing.T) {
	const bs = 4096
	path := filepath.Join(t.TempDir(), "i.gz")
	data := textish(rand.New(rand.NewPCG(5, 6)), 20*bs)
	opts := Options{BlockSize: bs, Level: 1, Cache: NewCache(1 << 20)}
	packFile(t, path, data, opts)
	f, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.idx.InMemory() {
		t.Fatal("the test needs a File with an index sidecar")
	}
	copies := func() int { // mappings of unlinked files: a copy of an index
		maps, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(maps), "(deleted)")
	}
	before := copies()
	for round := 0; round < 3; round++ {
		if err := f.Idle(); err != nil {
			t.Fatal(err)
		}
		if f.shared == nil || f.idx == f.shared {
			t.Fatal("an idle File reads through the sidecar's own index")
		}
		if n := copies(); n > before {
			t.Fatalf("round %d: Idle mapped %d copies of the index", round, n-before)
		}
		checkSame(t, f, data, "idle")
		if !f.Resume() {
			t.Fatal("Resume of an unchanged file failed")
		}
		more := textish(rand.New(rand.NewPCG(7, uint64(round))), 3*bs+100)
		if _, err := f.Append(more); err != nil {
			t.Fatal(err)
		}
		data = append(data, more...)
	}
	if err := f.Idle(); err != nil {
		t.Fatal(err)
	}
	checkSame(t, f, data, "idle after appends")
}

// TestIdleReaderAfterOtherWriter: an idle reader whose file another process
// then truncates, or grows far past the reader's index, reads each block's
// old content or an error or the end, never zeros the file never held
// (reading the sidecar's live mapping instead of a copy once did: the
// live record count and tail disagreed with the reader's own size).
func TestIdleReaderAfterOtherWriter(t *testing.T) {
	const bs = 8192
	const blocks = 40
	for _, change := range []string{"truncate", "grow"} {
		t.Run(change, func(t *testing.T) {
			path, store, w := versionedFile(t, bs, blocks)
			buf := make([]byte, bs)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			r, err := Open(path, Options{Store: store, ReadWhileLocked: true, Cache: NewCache(0)})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if err := r.Idle(); err != nil {
				t.Fatal(err)
			}
			w, err = Open(path, Options{BlockSize: bs, Level: 1, Store: store})
			if err != nil {
				t.Fatal(err)
			}
			switch change {
			case "truncate":
				err = w.Truncate(2 * bs)
			case "grow":
				for k := int64(blocks); k < 40*blocks && err == nil; k++ {
					versionBlock(buf, k, 1, false)
					_, err = w.Append(buf)
				}
			}
			if err == nil {
				err = w.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			p := make([]byte, blocks*bs)
			n, err := r.ReadAt(p, 0)
			if err != nil && !errors.Is(err, io.EOF) {
				var be *BlockError
				if !errors.As(err, &be) {
					t.Fatalf("read: %v", err)
				}
			}
			for k := int64(0); k < int64(n)/bs; k++ {
				if !checkVersionBlock(p[k*bs:(k+1)*bs], k, 1) {
					t.Fatalf("block %d of %d bytes read (%v): not a version of it (head %x)", k, n, err, p[k*bs:k*bs+24])
				}
			}
			// The streaming path (cat, unpack) of a File that was idle.
			var out bytes.Buffer
			_, err = r.WriteRange(&out, 0, -1)
			var be *BlockError
			if err != nil && !errors.As(err, &be) {
				t.Fatalf("WriteRange: %v", err)
			}
			for k := int64(0); k < int64(out.Len())/bs; k++ {
				if !checkVersionBlock(out.Bytes()[k*bs:(k+1)*bs], k, 1) {
					t.Fatalf("WriteRange: block %d of %d bytes (%v): not a version of it", k, out.Len(), err)
				}
			}
		})
	}
}

// versionedFile creates a file of the given blocks at version 0 (every
// fifth one incompressible) through a writer it returns with the lock held.
func versionedFile(t *testing.T, bs, blocks int64) (string, *Store, *File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "shared.gz")
	store, err := FindStore(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := Create(path, 0o644, Options{BlockSize: int(bs), Level: 1, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, bs)
	for k := int64(0); k < blocks; k++ {
		versionBlock(buf, k, 0, k%5 == 0)
		if _, err := w.WriteAt(buf, k*bs); err != nil {
			t.Fatal(err)
		}
	}
	return path, store, w
}

// TestIdleViewOfNonUniformFile: an idle reader of another tool's BGZF file
// (members of uneven sizes: a non-uniform index, found by binary search)
// whose file another process cuts and writes on reads, through ReadAt and
// WriteRange, each byte as the old or the new file held it, without an
// error once the writer is done (a block that met its changes is read
// again after a reload); never another offset's bytes, never a crash. The
// view reads the writer's new records at numbers whose old records said
// other offsets, and blocks cached by the old ones (without checkRange:
// wrong bytes).
func TestIdleViewOfNonUniformFile(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for round := 0; round < 20; round++ {
		old := textish(rng, 200000+rng.IntN(100000))
		var sizes []int
		for off := 0; off < len(old); {
			n := min(1000+rng.IntN(8000), len(old)-off)
			sizes = append(sizes, n)
			off += n
		}
		path, store := otherToolsBGZF(t, old, sizes)
		opts := Options{BlockSize: 8192, Level: 1, Store: store}
		w, err := Open(path, opts) // indexes it: a sidecar of uneven records
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := Open(path, Options{Store: store, ReadWhileLocked: true, Cache: NewCache(1 << 20)})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Idle(); err != nil {
			t.Fatal(err)
		}
		if r.idx.Uniform() {
			t.Fatal("the test needs a non-uniform index")
		}
		if round%2 == 0 { // blocks cached by the old records
			p := make([]byte, len(old))
			if n, err := r.ReadAt(p, 0); n != len(old) || err != nil || !bytes.Equal(p, old) {
				t.Fatalf("read before the change: %d bytes, %v; equal %v", n, err, bytes.Equal(p, old))
			}
		}
		// Another process cuts the file and writes other bytes after the
		// cut, in its own blocks of 8 KiB.
		cut := int64(rng.IntN(len(old) / 2))
		now := append(bytes.Clone(old[:cut]), textish(rng, len(old))...)
		if w, err = Open(path, opts); err != nil {
			t.Fatal(err)
		}
		if err := w.Truncate(cut); err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteAt(now[cut:], cut); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		check := func(how string, got []byte, err error) {
			t.Helper()
			if err != nil {
				// A block that met the writer's changes is read again
				// after a reload (WriteRange of an unlocked File reads
				// through ReadAt).
				t.Fatalf("round %d, %s: %v", round, how, err)
			}
			if len(got) > len(now) {
				t.Fatalf("round %d, %s: %d bytes of a file of %d, then %d", round, how, len(got), len(old), len(now))
			}
			for i := range got {
				if (i >= len(old) || got[i] != old[i]) && got[i] != now[i] {
					t.Fatalf("round %d, %s: byte %d is %q, neither the old nor the new %q (cut at %d, %v)", round, how, i, got[i], now[i], cut, err)
				}
			}
		}
		var out bytes.Buffer
		if round%4 < 2 { // streamed first, through the records as the writer left them
			_, err = r.WriteRange(&out, 0, -1)
			check("WriteRange", out.Bytes(), err)
		}
		if n, err := r.ReadAt(nil, int64(len(old)/2)); n != 0 || err != nil {
			t.Fatalf("round %d: an empty read: %d, %v", round, n, err)
		}
		for try := 0; try < 5; try++ {
			off := int64(rng.IntN(len(old)))
			p := make([]byte, min(int64(1+rng.IntN(100000)), int64(len(old))-off))
			n, err := r.ReadAt(p, off)
			if err != nil && !errors.Is(err, io.EOF) {
				// The writer is done: a read that met its changes reloads
				// the index and reads again.
				t.Fatalf("round %d, ReadAt(%d, %d): %v", round, len(p), off, err)
			}
			for i := 0; i < n; i++ {
				if p[i] != old[off+int64(i)] && p[i] != now[off+int64(i)] {
					t.Fatalf("round %d, ReadAt(%d, %d): byte %d is neither old nor new (cut at %d, %v)", round, len(p), off, off+int64(i), cut, err)
				}
			}
		}
		out.Reset()
		_, err = r.WriteRange(&out, 0, -1)
		check("WriteRange", out.Bytes(), err)
		r.Close()
	}
}
