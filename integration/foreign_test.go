package integration

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
	builds := strings.Count(m.logText(), "checkpoint index built")
	m.remount()
	f2, err := os.Open(m.path("access.log"))
	if err != nil {
		t.Fatal(err)
	}
	randomReads(t, f2, data, r, 50)
	f2.Close()
	if bytes.Contains([]byte(m.logText()), []byte("does not match")) || strings.Count(m.logText(), "checkpoint index built") != builds {
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
	fc.Close()
	// Once indexed, its size is what can be read; a reader that gets to
	// that point still meets EIO there, not a clean end of file.
	deadline = time.Now().Add(60 * time.Second)
	for {
		if st, err := os.Stat(m.path("cut.log")); err == nil && st.Size() < int64(len(data))/2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the truncated file was not indexed in 60 s; log:\n%s", m.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	got, err := os.ReadFile(m.path("cut.log"))
	if !errors.Is(err, syscall.EIO) || len(got) == 0 || !bytes.Equal(got, data[:len(got)]) {
		t.Fatalf("whole read of the indexed, truncated file: %d bytes, %v; want its readable prefix, then EIO", len(got), err)
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

// TestConvertOnWrite: with -o convert=on-write a write open of a plain
// gzip file converts it to BGZF in place and the write goes on; the
// backing file is BGZF holding every byte (zcat agrees). A daemon killed
// at random moments of a conversion leaves the original or the complete
// converted file, never neither.
func TestConvertOnWrite(t *testing.T) {
	m := newMount(t, "convert=on-write")
	r := rand.New(rand.NewPCG(21, 22))
	data := logLines(r, 6<<20)
	os.WriteFile(m.bpath("app.log"), data, 0o640)
	if out, err := execCommand("gzip", "-6", m.bpath("app.log")); err != nil {
		t.Fatalf("gzip: %v %s", err, out)
	}
	f, err := os.OpenFile(m.path("app.log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("write open of a plain gzip file: %v\nlog:\n%s", err, m.logText())
	}
	line := []byte("appended after the conversion\n")
	if _, err := f.Write(line); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Clone(data), line...)
	if got := mustRead(t, m.path("app.log")); !bytes.Equal(got, want) {
		t.Fatalf("after conversion and append: %d bytes, want %d", len(got), len(want))
	}
	checkBacking(t, m, "app.log", want)
	if st, err := os.Stat(m.bpath("app.log.gz")); err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("converted file mode: %v %v", st, err)
	}
	if hdr := readHead(t, m.bpath("app.log.gz"), 16); hdr[3]&4 == 0 || hdr[12] != 'B' || hdr[13] != 'C' {
		t.Fatalf("backing file is not BGZF after the conversion: % x", hdr)
	}
	// Two writers open a plain gzip file at once: one conversion, and both
	// appends are in the file (the second conversion renamed over the
	// first, losing what was written through it).
	twice := logLines(r, 32<<20)
	os.WriteFile(m.bpath("two.log"), twice, 0o644)
	if out, err := execCommand("gzip", "-1", m.bpath("two.log")); err != nil {
		t.Fatalf("gzip: %v %s", err, out)
	}
	var wg sync.WaitGroup
	for i, line := range []string{"AAA\n", "BBB\n"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 50 * time.Millisecond) // while the first converts
			f, err := os.OpenFile(m.path("two.log"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Errorf("write open during a conversion: %v", err)
				return
			}
			if _, err := f.Write([]byte(line)); err != nil {
				t.Error(err)
			}
			if err := f.Close(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got := mustRead(t, m.path("two.log"))
	if !bytes.HasPrefix(got, twice) || len(got) != len(twice)+8 || !bytes.Contains(got[len(twice):], []byte("AAA\n")) || !bytes.Contains(got[len(twice):], []byte("BBB\n")) {
		t.Fatalf("two appends during a conversion: %d bytes (want %d), ending %q", len(got), len(twice)+8, got[max(0, len(got)-12):])
	}
	// Bytes after the last member that are not gzip would be dropped by
	// the conversion: the write open fails and the file stays as it was.
	os.WriteFile(m.bpath("tail.log"), data[:100<<10], 0o644)
	if out, err := execCommand("gzip", "-6", m.bpath("tail.log")); err != nil {
		t.Fatalf("gzip: %v %s", err, out)
	}
	withText, _ := os.ReadFile(m.bpath("tail.log.gz"))
	withText = append(withText, "trailing text\n"...)
	os.WriteFile(m.bpath("tail.log.gz"), withText, 0o644)
	if f, err := os.OpenFile(m.path("tail.log"), os.O_WRONLY|os.O_APPEND, 0); errnoOf(err) != syscall.EIO {
		if err == nil {
			f.Close()
		}
		t.Fatalf("write open of gzip with trailing text: %v, want EIO", err)
	}
	if got, _ := os.ReadFile(m.bpath("tail.log.gz")); !bytes.Equal(got, withText) {
		t.Fatalf("a refused conversion changed the file")
	}
	if !strings.Contains(m.logText(), "converting would drop them") {
		t.Fatalf("the log does not say why the conversion was refused:\n%s", m.logText())
	}

	// Crashes during conversions of a bigger file.
	big := logLines(r, 40<<20)
	os.WriteFile(m.bpath("big.log"), big, 0o644)
	if out, err := execCommand("gzip", "-1", m.bpath("big.log")); err != nil {
		t.Fatalf("gzip: %v %s", err, out)
	}
	orig, _ := os.ReadFile(m.bpath("big.log.gz"))
	for _, delay := range []time.Duration{20 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond} {
		done := make(chan error, 1)
		go func() {
			f, err := os.OpenFile(m.path("big.log"), os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				f.Close()
			}
			done <- err
		}()
		time.Sleep(delay)
		m.kill()
		<-done
		now, err := os.ReadFile(m.bpath("big.log.gz"))
		if err != nil {
			t.Fatalf("after a kill %v into the conversion: %v", delay, err)
		}
		if !bytes.Equal(now, orig) {
			// Converted: it must be complete.
			if got := zcat(t, m.bpath("big.log.gz")); !bytes.Equal(got, big) {
				t.Fatalf("after a kill %v into the conversion: neither the original nor the complete file (%d bytes)", delay, len(got))
			}
			os.WriteFile(m.bpath("big.log.gz"), orig, 0o644) // again, from the original
			t.Logf("killed %v into the conversion: the converted file is complete", delay)
		} else {
			t.Logf("killed %v into the conversion: the original is intact", delay)
		}
		m.start()
	}
}

func readHead(t *testing.T, path string, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMixedAndTrailing: files other tools made of BGZF and something else
// (a gzip member appended to a bgzip or gzfs file, gzip before bgzip,
// trailing text, a bgzip file cut by a copy) read through the mount as
// gzip -dc reads them (a cut file: its whole part, then EIO), with the
// size stat gives, and neither a read nor a stat nor a write open changes
// a byte of them. A write open says EACCES or EROFS as for any gzip file.
func TestMixedAndTrailing(t *testing.T) {
	m := newMount(t)
	r := rand.New(rand.NewPCG(21, 22))
	data := logLines(r, 300<<10)
	more := []byte("appended by gzip\n")
	tool := func(name string, in []byte, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Stdin = bytes.NewReader(in)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return out
	}
	bg := tool("bgzip", data, "-c")
	gz := tool("gzip", more, "-c")
	mustWrite(t, m.path("own"), data)
	own, err := os.ReadFile(m.bpath("own.gz"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		b    []byte
		want []byte
		cut  bool // reads end with EIO after want
	}{
		{"bgzip-gzip", cat(bg, gz), cat(data, more), false},
		{"gzfs-gzip", cat(own, gz), cat(data, more), false},
		{"gzip-bgzip", cat(gz, bg), cat(more, data), false},
		{"bgzip-text", cat(bg, []byte("trailing text\n")), data, false},
		{"bgzip-cut", bg[:len(bg)/2], nil, true},
	}
	for _, c := range cases {
		os.WriteFile(m.bpath(c.name+".gz"), c.b, 0o644)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := os.ReadFile(m.path(c.name))
			if c.cut {
				// A request that reaches the cut fails whole (a short reply
				// would tell the kernel the file ends there); one before it
				// reads.
				if errnoOf(err) != syscall.EIO || !bytes.HasPrefix(data, got) {
					t.Errorf("read: %d bytes, %v; want EIO", len(got), err)
				}
				f, err := os.Open(m.path(c.name))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				buf := make([]byte, 4096)
				if n, err := f.ReadAt(buf, 8192); err != nil || !bytes.Equal(buf[:n], data[8192:8192+4096]) {
					t.Errorf("pread before the cut: %d bytes, %v", n, err)
				}
			} else if err != nil || !bytes.Equal(got, c.want) {
				t.Errorf("read: %d bytes, %v; want %d bytes", len(got), err, len(c.want))
			}
			if _, err := os.OpenFile(m.path(c.name), os.O_WRONLY|os.O_APPEND, 0); errnoOf(err) != syscall.EROFS {
				t.Errorf("write open of a gzip file that is not BGZF: %v, want EROFS", err)
			}
			if !strings.Contains(m.logText(), "write open of a gzip file that is not BGZF") || !strings.Contains(m.logText(), c.name+".gz") {
				t.Errorf("the log does not say why a write open of %s failed:\n%s", c.name, m.logText())
			}
		})
	}
	time.Sleep(1100 * time.Millisecond) // attribute timeout: stat asks the daemon
	for _, c := range cases {
		if st, err := os.Stat(m.path(c.name)); !c.cut && (err != nil || st.Size() != int64(len(c.want))) {
			t.Errorf("stat %s: %v, %v; want %d bytes", c.name, st, err, len(c.want))
		}
	}
	m.unmount()
	for _, c := range cases {
		if got, _ := os.ReadFile(m.bpath(c.name + ".gz")); !bytes.Equal(got, c.b) {
			t.Errorf("%s.gz changed: %d bytes, was %d", c.name, len(got), len(c.b))
		}
	}
}

// cat joins byte slices into a new one.
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// TestUnlinkOpenForeignForgetsIndex: a plain gzip file removed while it is
// open and its checkpoint index is being built leaves no index behind once
// closed (the build wrote it after the sidecars were forgotten).
func TestUnlinkOpenForeignForgetsIndex(t *testing.T) {
	m := newMount(t)
	r := rand.New(rand.NewPCG(31, 32))
	os.WriteFile(m.bpath("h"), logLines(r, 24<<20), 0o644)
	if out, err := execCommand("gzip", "-6", m.bpath("h")); err != nil {
		t.Fatalf("gzip: %v %s", err, out)
	}
	f, err := os.Open(m.path("h")) // starts the build
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(m.path("h")); err != nil {
		t.Fatal(err)
	}
	f.Read(make([]byte, 4096))
	f.Close()
	// The build goes on to its end, then its last reference goes.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(m.logText(), "checkpoint index built") {
		if time.Now().After(deadline) {
			t.Fatalf("the build of the removed file's index did not end in 30 s:\n%s", m.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := 0; i < 100 && hasCheckpointIndex(m.bpath(".gzfs")); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if hasCheckpointIndex(m.bpath(".gzfs")) {
		t.Fatalf("a checkpoint index of the removed file is left:\n%s", m.logText())
	}
}
