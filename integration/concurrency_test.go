package integration

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrency runs readers and writers on one file and on many files
// against a daemon built with -race.
func TestConcurrency(t *testing.T) {
	if testing.Short() && os.Getenv("CI") == "" {
		t.Skip("builds gzfs with -race")
	}
	m := newMount(t)
	m.bin = raceBinary(t)
	m.remount()

	const writers, chunk, rounds = 4, 20_000, 30
	// One file: each writer owns a stripe; readers read all the time.
	f0 := m.path("one")
	os.WriteFile(f0, nil, 0o644)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.Open(f0)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			buf := make([]byte, 64<<10)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := f.ReadAt(buf, 0); err != nil && err.Error() != "EOF" {
					t.Error(err)
					return
				}
			}
		}()
	}
	var ww sync.WaitGroup
	for w := 0; w < writers; w++ {
		ww.Add(1)
		go func(w int) {
			defer ww.Done()
			f, err := os.OpenFile(f0, os.O_RDWR, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			for i := 0; i < rounds; i++ {
				off := int64((i*writers + w) * chunk)
				if _, err := f.WriteAt(bytes.Repeat([]byte{byte('a' + w)}, chunk), off); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	// Many files at the same time.
	for w := 0; w < writers; w++ {
		ww.Add(1)
		go func(w int) {
			defer ww.Done()
			for i := 0; i < 40; i++ {
				p := m.path(fmt.Sprintf("many-%d-%d", w, i))
				data := pattern(5_000+i*997, byte(w))
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Error(err)
					return
				}
				if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, data) {
					t.Errorf("%s: read back %d bytes, %v", p, len(got), err)
					return
				}
			}
		}(w)
	}
	ww.Wait()
	close(stop)
	wg.Wait()
	want := make([]byte, writers*rounds*chunk)
	for i := 0; i < rounds; i++ {
		for w := 0; w < writers; w++ {
			off := (i*writers + w) * chunk
			copy(want[off:off+chunk], bytes.Repeat([]byte{byte('a' + w)}, chunk))
		}
	}
	expectContentT(t, m, "one", want)
	m.unmount()
	if strings.Contains(m.logText(), "DATA RACE") {
		t.Errorf("race detector:\n%s", m.logText())
	}
}

func expectContentT(t *testing.T, m *mountProc, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(m.path(p))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s: %d bytes, want %d (%v), first difference at %d", p, len(got), len(want), err, firstDiff(got, want))
	}
	checkBacking(t, m, p, want)
}

// TestAppendProcesses appends lines from several processes with O_APPEND:
// every line is whole and none is lost.
func TestAppendProcesses(t *testing.T) {
	m := newMount(t)
	const procs, lines = 4, 300
	var cmds []*exec.Cmd
	for p := 0; p < procs; p++ {
		script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do printf 'proc %d line %%05d %s\n' $i >> %s; i=$((i+1)); done`,
			lines, p, strings.Repeat("x", 80), m.path("app.log"))
		cmd := exec.Command("sh", "-c", script)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(m.path("app.log"))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	all := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	for _, l := range all {
		var p, i int
		var rest string
		if n, _ := fmt.Sscanf(l, "proc %d line %d %s", &p, &i, &rest); n != 3 || rest != strings.Repeat("x", 80) {
			t.Fatalf("torn line %q", l)
		}
		counts[fmt.Sprint(p, i)]++
	}
	if len(all) != procs*lines || len(counts) != procs*lines {
		t.Errorf("%d lines (%d distinct), want %d", len(all), len(counts), procs*lines)
	}
	checkBacking(t, m, "app.log", got)
}

// TestTailFollow: a reader polling like tail -f sees appended lines within a
// second, and the flush timer puts them in the backing file while the
// writer keeps the file open.
func TestTailFollow(t *testing.T) {
	m := newMount(t, "flush=500ms")
	w, err := os.OpenFile(m.path("live.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r, err := os.Open(m.path("live.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var seen []byte
	for i := 0; i < 5; i++ {
		line := fmt.Sprintf("event %d\n", i)
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		// A generous deadline: this checks that the line arrives (no
		// flush is needed for it), not how fast.
		deadline := time.Now().Add(20 * time.Second)
		for !bytes.HasSuffix(seen, []byte(line)) {
			if time.Now().After(deadline) {
				t.Fatalf("reader did not see %q within 20 s (has %q)", line, seen)
			}
			buf := make([]byte, 4096)
			n, _ := r.Read(buf)
			seen = append(seen, buf[:n]...)
			if n == 0 {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	// Read the backing file in this process: a fork would close the
	// inherited descriptors of the mount, which flushes the file.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := gunzipFile(m.bpath("live.log.gz"))
		if err == nil && bytes.Equal(out, seen) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backing file not flushed by the timer: %q (%v), want %q", out, err, seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// gunzipFile decompresses a file in this process.
func gunzipFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// TestPageCache: re-reading an unchanged file is served from the kernel
// page cache (FOPEN_KEEP_CACHE), a change through the mount is seen.
func TestPageCache(t *testing.T) {
	m := newMount(t, "debug")
	data := pattern(1<<20, 12)
	mustWrite(t, m.path("f"), data)
	reads := func() int { return strings.Count(m.logText(), ": READ ") }
	if got := mustRead(t, m.path("f")); !bytes.Equal(got, data) {
		t.Fatal("first read differs")
	}
	// The kernel's read-ahead may still have a READ in flight when the
	// read returns: count once the log has settled.
	first := reads()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		n := reads()
		if n == first {
			break
		}
		first = n
	}
	if first == 0 {
		t.Fatal("no READ request in the debug log")
	}
	for i := 0; i < 3; i++ {
		if got := mustRead(t, m.path("f")); !bytes.Equal(got, data) {
			t.Fatal("re-read differs")
		}
	}
	if again := reads(); again != first {
		t.Errorf("re-reading an unchanged file sent %d READ requests to the daemon", again-first)
	}
	f, _ := os.OpenFile(m.path("f"), os.O_WRONLY, 0)
	f.WriteAt([]byte("changed"), 5000)
	f.Close()
	copy(data[5000:], "changed")
	if got := mustRead(t, m.path("f")); !bytes.Equal(got, data) {
		t.Errorf("read after a write differs at %d", firstDiff(got, data))
	}
}

// TestOpensRaceReopen: several opens at once of a file whose idle engine
// cannot be resumed (the backing file changed behind the mount), and of a
// plain gzip file (the foreign table). Each open used to be able to take a
// reference to an engine that another open was closing: reads failed with
// EBADF ("file already closed").
func TestOpensRaceReopen(t *testing.T) {
	m := newMount(t)
	data := bytes.Repeat([]byte("a line of a log that several readers open at once\n"), 4000)
	mustWrite(t, m.path("f"), data)
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(data)
	zw.Close()
	os.WriteFile(m.bpath("g.gz"), zb.Bytes(), 0o644)
	mustRead(t, m.path("g")) // its checkpoint index is built in the background
	var mu sync.Mutex
	var fails []string
	read := func(name string, want []byte) {
		got, err := os.ReadFile(m.path(name))
		if err != nil || !bytes.Equal(got, want) {
			mu.Lock()
			fails = append(fails, fmt.Sprintf("%s: %d bytes, %v", name, len(got), err))
			mu.Unlock()
		}
	}
	for round := 0; round < 300; round++ {
		time.Sleep(5 * time.Millisecond) // the last close parks the engine
		now := time.Now()
		os.Chtimes(m.bpath("f.gz"), now, now) // so it cannot be resumed
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(2)
			go func() { defer wg.Done(); read("f", data) }()
			go func() { defer wg.Done(); read("g", data) }()
		}
		wg.Wait()
	}
	if len(fails) > 0 {
		t.Fatalf("%d reads failed, e.g. %v\nlog:\n%s", len(fails), fails[:min(3, len(fails))], m.logText())
	}
}
