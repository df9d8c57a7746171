package integration

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestForeignGzipRandomAccess: a gzip -6 file put in the backing directory
// reads right through the mount at once (streaming), gets its checkpoint
// index built in the background, then serves random reads through it (the
// same bytes), its exact size in stat, and after a remount the index is
// used without a rebuild. A truncated copy reads up to the cut, then EIO.
func TestForeignGzipRandomAccess(t *testing.T) {
	m := newMount(t)
	r := rand.New(rand.NewPCG(11, 12))
	data := logLines(r, 24<<20)
	// Two members (as log rotation with append or cat of two .gz makes):
	// the ISIZE trailer tells only the second one's size.
	half := len(data) / 3
	for i, part := range [][]byte{data[:half], data[half:]} {
		p := m.bpath("part" + string(rune('0'+i)))
		os.WriteFile(p, part, 0o644)
		if out, err := execCommand("gzip", "-6", p); err != nil {
			t.Fatalf("gzip: %v %s", err, out)
		}
	}
	g0, _ := os.ReadFile(m.bpath("part0.gz"))
	g1, _ := os.ReadFile(m.bpath("part1.gz"))
	os.Remove(m.bpath("part0.gz"))
	os.Remove(m.bpath("part1.gz"))
	gz := append(g0, g1...)
	os.WriteFile(m.bpath("access.log.gz"), gz, 0o644)
	f, err := os.Open(m.path("access.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	randomReads(t, f, data, r, 20)
	// The index appears in the sidecar store; reads then use it.
	deadline := time.Now().Add(60 * time.Second)
	for !hasCheckpointIndex(m.bpath(".gzfs")) {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint index after 60 s; log:\n%s", m.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
	randomReads(t, f, data, r, 200)
	f.Close()
	time.Sleep(1100 * time.Millisecond) // attribute timeout
	if st, err := os.Stat(m.path("access.log")); err != nil || st.Size() != int64(len(data)) {
		t.Fatalf("stat after indexing: %v %v, want %d bytes", st, err, len(data))
	}
	m.remount()
	f2, err := os.Open(m.path("access.log"))
	if err != nil {
		t.Fatal(err)
	}
	randomReads(t, f2, data, r, 50)
	f2.Close()
	if bytes.Contains([]byte(m.logText()), []byte("does not match")) {
		t.Fatalf("the index was not reused after a remount:\n%s", m.logText())
	}
	// Truncated: reads before the cut work, past it EIO.
	os.WriteFile(m.bpath("cut.log.gz"), gz[:len(gz)/2], 0o644)
	fc, err := os.Open(m.path("cut.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	p := make([]byte, 4096)
	if n, err := fc.ReadAt(p, 1<<20); err != nil || !bytes.Equal(p[:n], data[1<<20:1<<20+4096]) {
		t.Fatalf("read before the cut: %d %v", n, err)
	}
	if _, err := fc.ReadAt(p, int64(len(data))-8192); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read past the cut: %v, want EIO", err)
	}
}

func hasCheckpointIndex(store string) bool {
	ents, _ := os.ReadDir(store)
	for _, e := range ents {
		if filepath.Ext(e.Name()) == ".ckp" {
			return true
		}
	}
	return false
}

func randomReads(t *testing.T, f *os.File, data []byte, r *rand.Rand, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		off := r.Int64N(int64(len(data)))
		p := make([]byte, 1+r.IntN(200000))
		got, err := f.ReadAt(p, off)
		want := data[off:min(off+int64(len(p)), int64(len(data)))]
		if got != len(want) || !bytes.Equal(p[:got], want) || (got < len(p) && err != io.EOF) {
			t.Fatalf("read %d at %d: %d bytes, %v (want %d)", len(p), off, got, err, len(want))
		}
	}
}

// logLines returns n bytes of access-log-like text.
func logLines(r *rand.Rand, n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString("10.0.")
		b.WriteString(string(rune('0' + r.IntN(10))))
		b.WriteString(" - - [02/Dec/2026:10:00:00 +0000] \"GET /api/v1/items/")
		for i := 0; i < 6; i++ {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		b.WriteString(" HTTP/1.1\" 200 ")
		for i := 0; i < 4; i++ {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		b.WriteByte('\n')
	}
	return b.Bytes()[:n]
}
