package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The daemon reuses the descriptor of a backing directory for up to a
// second (the entry timeout) instead of walking its path at each
// operation (fs/dirfds.go). These tests check what that must not change.

// TestDirReplacedBehindMount: a directory renamed away and made anew in
// the backing tree by another program is seen through the mount once the
// kernel's one-second entry timeout has passed: its files, not the old
// directory's, and a file created through the mount lands in it.
func TestDirReplacedBehindMount(t *testing.T) {
	m := newMount(t)
	mustMkdirAll(t, m.path("a/b"))
	mustWrite(t, m.path("a/b/old"), []byte("old"))
	expectContent(t, m, "a/b/old", []byte("old"))

	if err := os.Rename(m.bpath("a/b"), m.bpath("a/b.moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(m.bpath("a/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.bpath("a/b/plain"), []byte("plain"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond)

	if _, err := os.Stat(m.path("a/b/old")); !os.IsNotExist(err) {
		t.Fatalf("stat of the moved directory's file through the old name: %v, want ENOENT", err)
	}
	if b, err := os.ReadFile(m.path("a/b/plain")); err != nil || string(b) != "plain" {
		t.Fatalf("the new directory's file through the mount: %q, %v", b, err)
	}
	expectContent(t, m, "a/b.moved/old", []byte("old"))
	mustWrite(t, m.path("a/b/new"), []byte("new"))
	if _, err := os.Stat(m.bpath("a/b/new.gz")); err != nil {
		t.Fatalf("file created through the mount is not in the new directory: %v", err)
	}
	if _, err := os.Stat(m.bpath("a/b.moved/new.gz")); !os.IsNotExist(err) {
		t.Fatalf("file created through the mount went to the moved directory: %v", err)
	}
}

// TestDirRemadeThroughMount: a directory removed and made again under the
// same name through the mount (the backing filesystem may give it the
// removed one's inode number) is the new directory at once, and a
// directory renamed through the mount keeps its files under the new name.
func TestDirRemadeThroughMount(t *testing.T) {
	m := newMount(t)
	for i := 0; i < 50; i++ {
		d := m.path("d")
		mustMkdirAll(t, d)
		mustWrite(t, filepath.Join(d, "f"), []byte("f"+strconv.Itoa(i)))
		expectContent(t, m, "d/f", []byte("f"+strconv.Itoa(i)))
		if err := os.Remove(filepath.Join(d, "f")); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(d); err != nil {
			t.Fatalf("round %d: rmdir: %v", i, err)
		}
	}
	mustMkdirAll(t, m.path("x/y"))
	mustWrite(t, m.path("x/y/f"), []byte("f"))
	if err := os.Rename(m.path("x/y"), m.path("x/z")); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, m.path("x/z/g"), []byte("g"))
	mustMkdirAll(t, m.path("x/y"))
	mustWrite(t, m.path("x/y/h"), []byte("h"))
	for name, want := range map[string]bool{"x/z/f.gz": true, "x/z/g.gz": true, "x/y/h.gz": true, "x/y/f.gz": false, "x/y/g.gz": false} {
		if _, err := os.Stat(m.bpath(name)); (err == nil) != want {
			t.Errorf("backing %s: exists %v, want %v", name, err == nil, want)
		}
	}
}

// TestDirFdsBounded: working in many directories does not leave the daemon
// holding a descriptor per directory.
func TestDirFdsBounded(t *testing.T) {
	m := newMount(t)
	fds := func() int {
		ents, err := os.ReadDir("/proc/" + strconv.Itoa(m.cmd.Process.Pid) + "/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := fds()
	for i := 0; i < 300; i++ {
		d := m.path("d" + strconv.Itoa(i) + "/sub")
		mustMkdirAll(t, d)
		if _, err := os.Stat(filepath.Join(d, "missing")); !os.IsNotExist(err) {
			t.Fatalf("stat of a missing file: %v", err)
		}
	}
	// At most 64 cached directories (and a few descriptors of the Go
	// runtime).
	if after := fds(); after > before+64+4 {
		t.Fatalf("daemon holds %d descriptors after working in 600 directories (%d before)", after, before)
	}
}

func mustMkdirAll(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestDirFdsLetGo: the daemon does not keep a directory it worked in open
// for long: a file system mounted below BACKING can be unmounted (without
// -l) two seconds after the mount last used it.
func TestDirFdsLetGo(t *testing.T) {
	requireRoot(t)
	m := newMount(t)
	sub := m.bpath("sub")
	mustMkdirAll(t, sub)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", sub).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", sub).Run() })
	mustMkdirAll(t, m.path("sub/d/e"))
	for _, p := range []string{"sub/d/e/missing", "sub/d/missing"} {
		if _, err := os.Stat(m.path(p)); !os.IsNotExist(err) {
			t.Fatalf("stat %s: %v", p, err)
		}
	}
	// The sweep lets go of a descriptor 1-2 s after its last use; a loaded
	// machine may run it late, so this tries for 10 s.
	time.Sleep(2 * time.Second)
	for limit := time.Now().Add(8 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, err := exec.Command("umount", sub).CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(limit) {
			t.Fatalf("umount of the file system below BACKING: %v %s (the daemon still holds it 10 s after its last use)", err, out)
		}
	}
}
