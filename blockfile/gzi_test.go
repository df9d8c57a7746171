package blockfile

import (
	"bytes"
	"compress/gzip"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGZIBeside: a BGZF file made by bgzip -i gets its index from the
// .gzi beside it (no walk); a .gzi of another file is caught (by its
// checks, or by the block checks at the first read) and never gives wrong
// bytes.
func TestGZIBeside(t *testing.T) {
	if _, err := exec.LookPath("bgzip"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("bgzip is needed (make test installs tabix): %v", err)
		}
		t.Skip("bgzip is not installed")
	}
	r := rand.New(rand.NewPCG(31, 32))
	data := textish(r, 3<<20)
	dir := t.TempDir()
	raw := filepath.Join(dir, "data")
	os.WriteFile(raw, data, 0o644)
	if out, err := exec.Command("bgzip", "-i", "-f", raw).CombinedOutput(); err != nil {
		t.Fatalf("bgzip -i: %v %s", err, out)
	}
	path := raw + ".gz"
	var logs bytes.Buffer
	opts := Options{ReadOnly: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	check := func(want []byte) {
		t.Helper()
		f, err := Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		got := make([]byte, len(want))
		for _, off := range []int64{0, 1 << 20, int64(len(want)) - 70000} {
			n, err := f.ReadAt(got[off:off+65536], off)
			if err != nil || !bytes.Equal(got[off:off+int64(n)], want[off:off+int64(n)]) {
				t.Fatalf("read at %d: %d %v", off, n, err)
			}
		}
		if f.Size() != int64(len(want)) {
			t.Fatalf("size %d, want %d", f.Size(), len(want))
		}
	}
	check(data)
	if !strings.Contains(logs.String(), "from the .gzi") {
		t.Fatalf("the .gzi was not used:\n%s", logs.String())
	}
	// Another file's .gzi under this name: never wrong bytes.
	gzi, _ := os.ReadFile(path + ".gzi")
	data2 := textish(r, 2<<20+12345)
	os.WriteFile(raw, data2, 0o644)
	if out, err := exec.Command("bgzip", "-f", raw).CombinedOutput(); err != nil {
		t.Fatalf("bgzip: %v %s", err, out)
	}
	os.WriteFile(path+".gzi", gzi, 0o644)
	store, _ := FindStore(path)
	os.RemoveAll(store.Dir())
	check(data2)

	// A .gzi much older than its file (appended to or rewritten since) is
	// not read at all.
	logs.Reset()
	old := time.Now().Add(-time.Hour)
	os.Chtimes(path+".gzi", old, old)
	os.RemoveAll(store.Dir())
	check(data2)
	if !strings.Contains(logs.String(), "older than the file") {
		t.Errorf("an old .gzi was read:\n%s", logs.String())
	}

	// A gzip member appended after bgzip -i (gzip -c more >> FILE.gz): the
	// .gzi does not know it; the file is gzip, not BGZF, and stays as it is.
	os.WriteFile(raw, data, 0o644)
	if out, err := exec.Command("bgzip", "-i", "-f", raw).CombinedOutput(); err != nil {
		t.Fatalf("bgzip -i: %v %s", err, out)
	}
	var more bytes.Buffer
	zw := gzip.NewWriter(&more)
	zw.Write([]byte("appended by gzip\n"))
	zw.Close()
	b, _ := os.ReadFile(path)
	b = append(b, more.Bytes()...)
	os.WriteFile(path, b, 0o644)
	os.RemoveAll(store.Dir())
	if f, err := Open(path, Options{}); !errors.Is(err, ErrNotBGZF) {
		if err == nil {
			f.Close()
		}
		t.Errorf("open after a gzip member was appended: %v, want ErrNotBGZF", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, b) {
		t.Errorf("the file changed")
	}
}
