package integration

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBigDirectory lists a directory of 100k entries through the mount.
func TestBigDirectory(t *testing.T) {
	m := newMount(t)
	const n = 100_000
	dir := m.bpath("big")
	os.Mkdir(dir, 0o755)
	// Empty files are valid empty gzfs files; half are made as plain files.
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s/f%06d.gz", dir, i)
		if i%2 == 1 {
			name = fmt.Sprintf("%s/p%06d", dir, i)
		}
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	// And some made through the mount.
	for i := 0; i < 100; i++ {
		if err := os.WriteFile(m.path(fmt.Sprintf("big/new%03d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(m.path("big"))
	if err != nil {
		t.Fatal(err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		if seen[name] {
			t.Fatalf("%s listed twice", name)
		}
		seen[name] = true
	}
	if len(names) != n+100 || !seen["f000000"] || !seen["p000001"] || !seen["new099"] {
		t.Errorf("%d entries listed, want %d", len(names), n+100)
	}
	if st, err := os.Stat(m.path("big/f099998")); err != nil || st.Size() != 0 {
		t.Errorf("stat in the big directory: %v %v", st, err)
	}
}

// TestLargeFiles: a file over 4 GiB, and a sparse 16 GiB one, through the
// mount and in the backing file.
func TestLargeFiles(t *testing.T) {
	m := newMount(t)
	f, err := os.OpenFile(m.path("sparse"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	const size = 16 << 30
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	marks := map[int64]string{0: "head", 5<<30 - 2: "over 4 GiB", size - 4: "tail", 4 << 30: "at 4 GiB"}
	for off, s := range marks {
		if _, err := f.WriteAt([]byte(s), off); err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
	}
	for off, s := range marks {
		b := make([]byte, len(s))
		if _, err := f.ReadAt(b, off); err != nil || string(b) != s {
			t.Errorf("read at %d: %q %v", off, b, err)
		}
	}
	zero := make([]byte, 8192)
	if _, err := f.ReadAt(zero, 10<<30); err != nil || !bytes.Equal(zero, make([]byte, 8192)) {
		t.Errorf("hole does not read as zeros: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var st, bst unix.Stat_t
	unix.Stat(m.path("sparse"), &st)
	unix.Stat(m.bpath("sparse.gz"), &bst)
	if st.Size != size || st.Blocks != bst.Blocks || bst.Size > 64<<20 {
		t.Errorf("size %d blocks %d, backing size %d blocks %d", st.Size, st.Blocks, bst.Size, bst.Blocks)
	}
	m.remount()
	b := make([]byte, 10)
	g, _ := os.Open(m.path("sparse"))
	if _, err := g.ReadAt(b, 5<<30-2); err != nil || string(b) != "over 4 GiB" {
		t.Errorf("after remount: %q %v", b, err)
	}
	g.Close()
	m.unmount()
	// No gzip -t here: inflating 16 GiB of zeros takes about a minute.
}
