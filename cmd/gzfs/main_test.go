package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gzfsBin is the binary under test, built once by TestMain.
var gzfsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gzfs-cmd-test-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gzfsBin = filepath.Join(dir, "gzfs")
	build := exec.Command("go", "build", "-o", gzfsBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build gzfs:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is the outcome of one run of a command.
type result struct {
	stdout, stderr []byte
	code           int
}

// runCmd runs name with args and stdin, in dir when not empty.
func runCmd(t *testing.T, dir string, stdin []byte, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.Bytes(), stderr: errb.Bytes()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s %q: %v", name, args, err)
	}
	if bytes.Contains(r.stderr, []byte("goroutine ")) || bytes.Contains(r.stderr, []byte("panic:")) {
		t.Fatalf("%s %q panicked:\n%s", name, args, r.stderr)
	}
	return r
}

// gzfs runs the binary under test.
func gzfs(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	return runCmd(t, "", stdin, gzfsBin, args...)
}

// mustGzfs runs the binary and fails the test unless it exits 0.
func mustGzfs(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	r := gzfs(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("gzfs %q: exit %d: %s", args, r.code, r.stderr)
	}
	return r.stdout
}

// needTools skips the test when an external tool is missing, or fails it
// when the environment variable CI is set (CI must have every tool).
func needTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed (run 'make test', which installs it)", n)
			}
			t.Skipf("%s is not installed", n)
		}
	}
}

// testDir returns a fresh directory with its own sidecar store, so that the
// engine never uses a .gzfs directory of an ancestor.
func testDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, ".gzfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// textData returns n bytes of compressible, log-like text.
func textData(n int) []byte {
	var b bytes.Buffer
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "2026-11-23T12:%02d:%02d.%03dZ INFO request id=%d path=/api/v1/items/%d status=%d\n",
			i/60%60, i%60, i%1000, i, rng.IntN(5000), []int{200, 200, 200, 404, 500}[rng.IntN(5)])
	}
	return b.Bytes()[:n]
}

// randData returns n incompressible bytes.
func randData(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)}).Read(b)
	return b
}

// writeFile writes data to dir/name and returns the path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// readFile returns the contents of path.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameBytes fails the test when got differs from want, naming the first
// difference instead of dumping megabytes.
func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Fatalf("%s: got %d bytes, want %d; first difference at byte %d", what, len(got), len(want), i)
}

// members returns the offset of every member of a BGZF file, read from the
// BSIZE field of each header.
func members(t *testing.T, data []byte) []int64 {
	t.Helper()
	var offs []int64
	for off := 0; off < len(data); {
		if len(data)-off < 18 || data[off] != 0x1f || data[off+1] != 0x8b || data[off+12] != 'B' || data[off+13] != 'C' {
			t.Fatalf("no BGZF member header at offset %d", off)
		}
		offs = append(offs, int64(off))
		off += int(binary.LittleEndian.Uint16(data[off+16:])) + 1
	}
	return offs
}

// tempLeftovers lists the temporary files commands left in dir.
func tempLeftovers(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range ents {
		if strings.Contains(e.Name(), ".gzfs-tmp-") {
			left = append(left, e.Name())
		}
	}
	return left
}

// newGzfsCmd returns an unstarted command running the binary under test.
func newGzfsCmd(args ...string) *exec.Cmd {
	return exec.Command(gzfsBin, args...)
}
