package integration

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The many-machines tests (issue 12) run on a GlusterFS replica-2 volume
// on this machine, mounted twice with the GlusterFS client
// (integration/cluster/gluster.sh): each mount stands for a machine and
// gets its own gzfs daemon, with its own caches, over the same backing
// directory on the volume.

var (
	clusterOnce sync.Once
	clusterDir  string
	clusterErr  error
)

// needCluster brings the volume up once per test binary (TestMain takes it
// down) and returns the two client mounts. Without GlusterFS the tests
// fail when CI is set (CI must run them) and skip otherwise.
func needCluster(t *testing.T) (string, string) {
	t.Helper()
	requireRoot(t)
	clusterOnce.Do(func() {
		clusterDir = filepath.Join(os.TempDir(), "gzfs-gluster")
		out, err := exec.Command("bash", "cluster/gluster.sh", "up", clusterDir).CombinedOutput()
		if err != nil {
			clusterErr = fmt.Errorf("gluster.sh up: %v\n%s", err, out)
		}
	})
	if clusterErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(clusterErr)
		}
		t.Skip(clusterErr)
	}
	return filepath.Join(clusterDir, "client-a"), filepath.Join(clusterDir, "client-b")
}

func init() {
	clusterDown = func() {
		if clusterDir != "" {
			exec.Command("bash", "cluster/gluster.sh", "down", clusterDir).Run()
		}
	}
}

// newMountOn mounts gzfs over an existing backing directory.
func newMountOn(t *testing.T, backing string, opts ...string) *mountProc {
	t.Helper()
	root := t.TempDir()
	m := &mountProc{t: t, bin: gzfsBin, backing: backing, dir: filepath.Join(root, "mnt"),
		log: filepath.Join(root, "gzfs.log"), opts: opts}
	if err := os.Mkdir(m.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m.start()
	t.Cleanup(m.cleanup)
	return m
}

// twoClients makes a fresh backing directory on the volume and a gzfs
// mount over it through each client.
func twoClients(t *testing.T) (*mountProc, *mountProc) {
	t.Helper()
	ca, cb := needCluster(t)
	name := fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
	if err := os.Mkdir(filepath.Join(ca, name), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Join(ca, name)) })
	return newMountOn(t, filepath.Join(ca, name)), newMountOn(t, filepath.Join(cb, name))
}

// TestClusterCloseToOpen: what client A wrote and closed, client B's next
// open reads whole and right (data and size): a new file, an append, an
// in-place overwrite, a truncate; and the other way round.
func TestClusterCloseToOpen(t *testing.T) {
	a, b := twoClients(t)
	data := pattern(300_000, 3)
	mustWrite(t, a.path("f"), data)
	checkSame := func(m *mountProc, want []byte, what string) {
		t.Helper()
		got, err := os.ReadFile(m.path("f"))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: read %d bytes (%v), want %d; first difference at %d", what, len(got), err, len(want), firstDiff(got, want))
		}
		if st, err := os.Stat(m.path("f")); err != nil || st.Size() != int64(len(want)) {
			t.Fatalf("%s: stat %v %v, want size %d", what, st, err, len(want))
		}
	}
	checkSame(b, data, "new file written by A, read by B")
	f, err := os.OpenFile(a.path("f"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	tail := []byte("appended by A\n")
	f.Write(tail)
	f.Close()
	data = append(data, tail...)
	checkSame(b, data, "append by A, read by B")
	f, _ = os.OpenFile(a.path("f"), os.O_WRONLY, 0)
	f.WriteAt([]byte("OVERWRITTEN"), 100_000)
	f.Close()
	copy(data[100_000:], "OVERWRITTEN")
	checkSame(b, data, "overwrite by A, read by B")
	os.Truncate(a.path("f"), 50_000)
	data = data[:50_000]
	checkSame(b, data, "truncate by A, read by B")
	f, _ = os.OpenFile(b.path("f"), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("from B\n"))
	f.Close()
	data = append(data, "from B\n"...)
	checkSame(a, data, "append by B, read by A")
}

// TestClusterOneWriter: while A has a file open for writing, B's open for
// writing fails at once with EAGAIN; readers are not refused; after A
// closes, B writes.
func TestClusterOneWriter(t *testing.T) {
	a, b := twoClients(t)
	mustWrite(t, a.path("f"), []byte("first\n"))
	fa, err := os.OpenFile(a.path("f"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fa.Write([]byte("A holds it\n"))
	_, err = os.OpenFile(b.path("f"), os.O_WRONLY|os.O_APPEND, 0)
	if !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("second writer on another client: %v, want EAGAIN", err)
	}
	fa.Close()
	// A lets go of the lock a moment after its close returns (its engine
	// goes idle, unlocked): B's write open succeeds then.
	fb := openWhenFree(t, b.path("f"), os.O_WRONLY|os.O_APPEND)
	fb.Write([]byte("B writes\n"))
	fb.Close()
	if got := mustRead(t, a.path("f")); string(got) != "first\nA holds it\nB writes\n" {
		t.Fatalf("A reads %q", got)
	}
}

// TestClusterKill: A's daemon is killed while it writes (fsync after each
// batch); B at once reads a valid gzip stream with every synced byte, and
// B's next write open recovers the file as a local restart would.
func TestClusterKill(t *testing.T) {
	a, b := twoClients(t)
	f, err := os.OpenFile(a.path("log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var synced []byte
	for i := 0; i < 50; i++ {
		line := []byte(fmt.Sprintf("line %05d %s\n", i, bytes.Repeat([]byte("x"), 200)))
		if _, err := f.Write(line); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		synced = append(synced, line...)
	}
	f.Write([]byte("not synced\n"))
	a.kill()
	f.Close()
	gzipTest(t, a.bpath("log.gz"))
	got := mustRead(t, b.path("log"))
	if len(got) < len(synced) || !bytes.Equal(got[:len(synced)], synced) {
		t.Fatalf("B after A was killed: %d bytes, want the %d synced ones first", len(got), len(synced))
	}
	fb, err := os.OpenFile(b.path("log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("B's write open after A was killed: %v", err)
	}
	fb.Write([]byte("B goes on\n"))
	fb.Close()
	if got := mustRead(t, b.path("log")); !bytes.HasPrefix(got, synced) || !bytes.HasSuffix(got, []byte("B goes on\n")) {
		t.Fatalf("after B's append: %d bytes", len(got))
	}
}

// clusterBlock is block k of the reader test's file as version v writes
// it: 8-byte words (k, v, kind), then words that depend only on them,
// repetitive or (kind 1) random, so that rewrites change member sizes and
// move the members after them.
func clusterBlock(b []byte, k, v, kind uint64) {
	binary.LittleEndian.PutUint64(b[0:], k)
	binary.LittleEndian.PutUint64(b[8:], v)
	binary.LittleEndian.PutUint64(b[16:], kind)
	rng := rand.New(rand.NewPCG(k, v))
	for j := 24; j+8 <= len(b); j += 8 {
		w := k<<32 | v
		if kind == 1 {
			w = rng.Uint64()
		}
		binary.LittleEndian.PutUint64(b[j:], w)
	}
}

// TestClusterReaderWhileWriting: B opens and reads a file while A holds
// it open for writing and rewrites blocks in place (growing some, which
// moves the members after them), appends and fsyncs. B's open is not
// refused, every block B reads is one version of that block, whole (or
// EIO, never wrong bytes), B's size follows A's appends, and after A
// closes, B's next open reads exactly what A left.
func TestClusterReaderWhileWriting(t *testing.T) {
	a, b := twoClients(t)
	const bs = 61440
	const blocks = 48
	block := make([]byte, bs)
	var want []byte
	for k := uint64(0); k < blocks; k++ {
		clusterBlock(block, k, 0, k%4/3)
		want = append(want, block...)
	}
	mustWrite(t, a.path("f"), want)
	fa, err := os.OpenFile(a.path("f"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Open(b.path("f"))
	if err != nil {
		t.Fatalf("B's read open while A writes: %v", err)
	}
	defer fb.Close()
	if _, err := os.OpenFile(b.path("f"), os.O_WRONLY, 0); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("B's write open while A writes: %v, want EAGAIN", err)
	}

	var version atomic.Uint64
	var stop atomic.Bool
	var reads, eio, wrong atomic.Int64
	var newest atomic.Uint64 // the newest version B read
	done := make(chan struct{})
	go func() {
		defer close(done)
		p := make([]byte, bs)
		rng := rand.New(rand.NewPCG(1, 2))
		for !stop.Load() {
			unix.Fadvise(int(fb.Fd()), 0, 0, unix.FADV_DONTNEED) // read through B's engine, not its page cache
			k := rng.Uint64N(blocks)
			_, err := fb.ReadAt(p, int64(k)*bs)
			reads.Add(1)
			if errors.Is(err, syscall.EIO) {
				eio.Add(1)
				continue
			}
			if err != nil {
				t.Errorf("B reads block %d: %v", k, err)
				return
			}
			v := binary.LittleEndian.Uint64(p[8:])
			if v > newest.Load() {
				newest.Store(v)
			}
			check := make([]byte, bs)
			clusterBlock(check, k, v, binary.LittleEndian.Uint64(p[16:]))
			if v > version.Load() || !bytes.Equal(p, check) {
				wrong.Add(1)
				t.Errorf("B reads wrong bytes in block %d (head %x)", k, p[:24])
			}
		}
	}()
	rng := rand.New(rand.NewPCG(3, 4))
	size := int64(blocks)
	// At least 6 s, and on until B made 20 reads (a slow machine), at
	// most a minute.
	deadline, limit := time.Now().Add(6*time.Second), time.Now().Add(time.Minute)
	for v := uint64(1); time.Now().Before(deadline) || reads.Load() < 20 && time.Now().Before(limit); v++ {
		version.Store(v)
		for i := 0; i < 4; i++ {
			k := rng.Uint64N(blocks)
			clusterBlock(block, k, v, rng.Uint64N(2))
			if _, err := fa.WriteAt(block, int64(k)*bs); err != nil {
				t.Fatal(err)
			}
			copy(want[k*bs:], block)
		}
		if v%3 == 0 {
			clusterBlock(block, uint64(size), v, 0)
			if _, err := fa.WriteAt(block, size*bs); err != nil {
				t.Fatal(err)
			}
			want = append(want, block...)
			size++
		}
		if err := fa.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	// A's last version is fsynced: B, reading on, gets to it (its engine
	// looks at the backing file about once a second; 4 of the 48 blocks
	// hold that version).
	final := version.Load()
	for limit := time.Now().Add(15 * time.Second); newest.Load() < final && time.Now().Before(limit); {
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	<-done
	t.Logf("B: %d reads, %d EIO, %d wrong, newest version read %d, while A made %d versions",
		reads.Load(), eio.Load(), wrong.Load(), newest.Load(), final)
	if reads.Load() < 20 {
		t.Fatalf("B read only %d times", reads.Load())
	}
	if newest.Load() < final {
		t.Errorf("B does not follow A: newest version read %d of %d, 15 s after A's last fsync", newest.Load(), final)
	}
	if eio.Load()*4 > reads.Load() {
		t.Errorf("B: %d of %d reads failed", eio.Load(), reads.Load())
	}
	// B's open file follows A's appends (attribute timeout and the
	// engine's look at the backing file, a second each).
	var st os.FileInfo
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if st, err = fb.Stat(); err == nil && st.Size() == int64(len(want)) {
			break
		}
	}
	if st == nil || st.Size() != int64(len(want)) {
		t.Fatalf("B's size while A holds the file: %v, want %d", st, len(want))
	}
	if err := fa.Close(); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, b.path("f")); !bytes.Equal(got, want) {
		t.Fatalf("B after A closed: %d bytes, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
}

// openWhenFree opens p for writing (flag), waiting (at most 10 s) while
// another client's engine still holds the file (EAGAIN).
func openWhenFree(t *testing.T, p string, flag int) *os.File {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		f, err := os.OpenFile(p, flag, 0)
		if err == nil {
			return f
		}
		if !errors.Is(err, syscall.EAGAIN) || time.Now().After(deadline) {
			t.Fatalf("write open of %s: %v", p, err)
		}
	}
}

// TestClusterRewriteThenOtherWriter: A rewrites a few bytes inside block 3
// (its member grows into the padding after it and members move; the
// backing file keeps its size and last member) and closes without fsync;
// B, once A's engine let go of the file, overwrites block 4 whole. B must
// find A's index as A left it, not the one the volume held before: A's
// changes to its mapped index were still pages of A's machine when A let
// go of the lock, and B's write through the old record of block 4 landed
// on the grown block 3 (gzip -t: CRC error; both clients EIO from block 3).
func TestClusterRewriteThenOtherWriter(t *testing.T) {
	a, b := twoClients(t)
	const bs = 61440
	const blocks = 80
	block := func(k, v int) []byte {
		var buf bytes.Buffer
		for buf.Len() < bs {
			fmt.Fprintf(&buf, "block %04d version %d line %06d\n", k, v, buf.Len())
		}
		return buf.Bytes()[:bs]
	}
	var data []byte
	for k := 0; k < blocks; k++ {
		data = append(data, block(k, 0)...)
	}
	mustWrite(t, a.path("f"), data)
	time.Sleep(4 * time.Second) // A's engine closes: the volume has its index
	fa := openWhenFree(t, a.path("f"), os.O_WRONLY)
	patch := make([]byte, 8)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range patch {
		patch[i] = byte(r.Uint32())
	}
	if _, err := fa.WriteAt(patch, 3*bs+1000); err != nil {
		t.Fatal(err)
	}
	if err := fa.Close(); err != nil {
		t.Fatal(err)
	}
	copy(data[3*bs+1000:], patch)
	fb := openWhenFree(t, b.path("f"), os.O_WRONLY)
	whole := block(4, 1)
	if _, err := fb.WriteAt(whole, 4*bs); err != nil {
		t.Fatal(err)
	}
	if err := fb.Close(); err != nil {
		t.Fatal(err)
	}
	copy(data[4*bs:], whole)
	time.Sleep(4 * time.Second) // both engines close
	if out, err := exec.Command("gzip", "-t", a.bpath("f.gz")).CombinedOutput(); err != nil {
		t.Errorf("gzip -t of the backing file: %v %s", err, out)
	}
	for _, m := range []*mountProc{a, b} {
		if got, err := os.ReadFile(m.path("f")); err != nil || !bytes.Equal(got, data) {
			t.Errorf("reads %d bytes (%v), want %d; first difference at %d\nlog:\n%s", len(got), err, len(data), firstDiff(got, data), m.logText())
		}
	}
}
