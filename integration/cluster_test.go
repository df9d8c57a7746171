package integration

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
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
	time.Sleep(2500 * time.Millisecond) // A's engine stays idle 2 s, unlocked
	fb, err := os.OpenFile(b.path("f"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("B after A closed: %v", err)
	}
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
