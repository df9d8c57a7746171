package integration

import (
	"bytes"
	"compress/gzip"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// What the kernel caches against what the file is.

// TestOtherDaemonsChangeReachesCachedPages: two daemons over one backing
// directory (two machines on a shared volume are the same case). A reader
// on the first has an open file whose engine holds no lock; the second
// rewrites a block. Once the reader's fstat reports the new mtime, its
// reads return the new bytes, and so does every later open. The first
// daemon used to report the backing file's new mtime while its engine
// still served its old view (it looks again only once a second): the
// kernel dropped its pages at the new mtime, read them again from the old
// view and kept them under the new mtime, in this and every later open,
// until drop_caches.
func TestOtherDaemonsChangeReachesCachedPages(t *testing.T) {
	m := newMount(t)
	other := newMountOn(t, m.backing)
	const bs = 61440
	const off = 2*bs + 100
	var data []byte
	for i := 0; i < 4; i++ {
		data = append(data, bytes.Repeat([]byte{byte('A' + i)}, bs)...)
	}
	mustWrite(t, m.path("g"), data)
	time.Sleep(3 * time.Second) // the writer's engine closes
	before, err := os.Stat(m.path("g"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(900 * time.Millisecond) // the attributes the kernel holds are near their end
	f, err := os.Open(m.path("g"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	unix.Fadvise(fd, 0, 0, unix.FADV_RANDOM)
	p := make([]byte, 4)
	if _, err := f.ReadAt(p, off); err != nil || string(p) != "CCCC" {
		t.Fatalf("read before the change: %q %v", p, err)
	}
	// No fstat here: the open dropped the kernel's attributes, and the
	// first one after the change below must be the one that fetches them.
	time.Sleep(50 * time.Millisecond)
	w, err := os.OpenFile(other.path("g"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(bytes.Repeat([]byte("N"), 1000), off); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	sawNew := false
	for deadline := time.Now().Add(5 * time.Second); !sawNew && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		sawNew = time.Unix(st.Mtim.Unix()) != before.ModTime()
		if _, err := f.ReadAt(p, off); err != nil {
			t.Fatal(err)
		}
		if sawNew && string(p) != "NNNN" {
			t.Fatalf("fstat reports the new mtime, the read gives %q, want NNNN", p)
		}
	}
	if !sawNew {
		t.Fatal("fstat never reported the other daemon's change")
	}
	f.Close()
	time.Sleep(3 * time.Second) // the reader's engine closes
	if got := mustRead(t, m.path("g")); string(got[off:off+4]) != "NNNN" {
		t.Fatalf("a later open reads %q, want NNNN", got[off:off+4])
	}
}

// twoMemberGzip is a gzip file of two members, the second 21 bytes long:
// its ISIZE trailer (21) is not the file's size.
func twoMemberGzip(t *testing.T, first []byte) ([]byte, []byte) {
	t.Helper()
	last := []byte("the last 21 bytes...\n")
	var b bytes.Buffer
	for _, part := range [][]byte{first, last} {
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
		zw.Write(part)
		zw.Close()
	}
	return b.Bytes(), append(bytes.Clone(first), last...)
}

// TestForeignWholeOnceIndexed: a plain gzip file of two members reads
// whole through the first opens after its checkpoint index is built. The
// kernel still held st_size as the ISIZE trailer (21 bytes) from the
// opens before the index (direct I/O then); the first open through the
// page cache must drop it, or reads stop at 21 bytes with no error.
func TestForeignWholeOnceIndexed(t *testing.T) {
	m := newMount(t)
	gz, want := twoMemberGzip(t, logLines(rand.New(rand.NewPCG(31, 32)), 64<<20))
	if err := os.WriteFile(m.bpath("two.log.gz"), gz, 0o644); err != nil {
		t.Fatal(err)
	}
	hour := time.Now().Add(-time.Hour)
	os.Chtimes(m.bpath("two.log.gz"), hour, hour) // settled: no torn tail to wait for
	f, err := os.Open(m.path("two.log"))
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 100)
	f.Read(p) // starts the index build
	f.Close()
	// Stats while the index is built keep st_size (ISIZE then) in the
	// kernel's cache up to the build's end.
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(m.logText(), "checkpoint index built"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no index built in 60 s:\n%s", m.logText())
		}
		os.Stat(m.path("two.log"))
	}
	if got := mustRead(t, m.path("two.log")); !bytes.Equal(got, want) {
		t.Fatalf("the first read after the index was built: %d bytes, want %d", len(got), len(want))
	}
}

// TestForeignHandleKeepsItsAttributes: an open handle of a plain gzip file
// reports the attributes of the file it reads, after another program
// replaced the name in the backing directory (rename over it): fstat used
// to stat the new file by name, and the kernel cut its reads of the old
// one to the new file's size.
func TestForeignHandleKeepsItsAttributes(t *testing.T) {
	m := newMount(t)
	data := logLines(rand.New(rand.NewPCG(33, 34)), 600_000)
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	zw.Close()
	hour := time.Now().Add(-time.Hour)
	if err := os.WriteFile(m.bpath("fh.gz"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(m.bpath("fh.gz"), hour, hour)
	f, err := os.Open(m.path("fh"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b.Reset()
	zw = gzip.NewWriter(&b)
	zw.Write([]byte("short\n"))
	zw.Close()
	if err := os.WriteFile(m.bpath(".new.gz"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(m.bpath(".new.gz"), hour, hour)
	if err := os.Rename(m.bpath(".new.gz"), m.bpath("fh.gz")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond) // past the attribute timeout
	st, err := f.Stat()
	if err != nil || st.Size() != int64(len(data)) {
		t.Fatalf("fstat of the open handle after the name was replaced: %v (%v), want %d bytes", st.Size(), err, len(data))
	}
	p := make([]byte, 1<<20)
	n, _ := f.ReadAt(p, 0)
	if !bytes.Equal(p[:n], data) {
		t.Fatalf("the open handle reads %d bytes, want %d", n, len(data))
	}
}
