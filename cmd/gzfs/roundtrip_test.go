package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// roundTripCases are the inputs every round trip runs on.
var roundTripCases = []struct {
	name  string
	data  []byte
	flags []string
}{
	{"empty", nil, nil},
	{"one-byte", []byte{'x'}, nil},
	{"one-block", textData(61440), nil},
	{"one-block-plus-one", textData(61441), nil},
	{"many-blocks", textData(61440*20 + 777), nil},
	{"random", randData(1<<20 + 3), nil},
	{"small-blocks", textData(100000), []string{"-b", "4K"}},
	{"max-blocks-random", randData(300000), []string{"--block-size", "65280"}},
	{"level1-threads1", textData(500000), []string{"-l", "1", "-p", "1"}},
	{"level9", textData(500000), []string{"--level=9", "--threads=2"}},
	{"gzip-style-level", textData(200000), []string{"-1"}},
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range roundTripCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := testDir(t)
			src := writeFile(t, dir, "in", tc.data)
			mustGzfs(t, nil, append(append([]string{"pack", "-q"}, tc.flags...), src)...)
			gz := src + ".gz"

			out := filepath.Join(dir, "out")
			mustGzfs(t, nil, "unpack", "-q", gz, out)
			sameBytes(t, "unpack", readFile(t, out), tc.data)
			sameBytes(t, "cat", mustGzfs(t, nil, "cat", gz), tc.data)

			n := int64(len(tc.data))
			for _, r := range [][2]int64{{0, 1}, {n / 3, n / 2}, {n - 1, 10}, {n, 5}, {n + 100, 5}, {61439, 2}} {
				off, length := max(r[0], 0), r[1]
				want := tc.data[min(off, n):min(off+length, n)]
				got := mustGzfs(t, nil, "cat", "--offset", strconv.FormatInt(off, 10), "--length", strconv.FormatInt(length, 10), gz)
				sameBytes(t, fmt.Sprintf("cat --offset %d --length %d", off, length), got, want)
			}
			stats := string(mustGzfs(t, nil, "stats", gz))
			if !strings.Contains(stats, fmt.Sprintf("logical size  %d ", n)) {
				t.Errorf("stats does not show logical size %d:\n%s", n, stats)
			}
			if got := tempLeftovers(t, dir); len(got) > 0 {
				t.Errorf("temporary files left: %q", got)
			}
		})
	}
}

func TestStdinStdout(t *testing.T) {
	t.Parallel()
	data := textData(300000)
	gz := mustGzfs(t, data, "pack", "-q", "-")
	if len(gz) == 0 || gz[0] != 0x1f {
		t.Fatalf("pack - wrote %d bytes, not gzip", len(gz))
	}
	sameBytes(t, "unpack - -", mustGzfs(t, gz, "unpack", "-", "-"), data)
	sameBytes(t, "cat - (stream)", mustGzfs(t, gz, "cat", "--offset", "1000", "--length", "5000", "-"), data[1000:6000])

	dir := testDir(t)
	src := writeFile(t, dir, "in", data)
	gz2 := mustGzfs(t, nil, "pack", "-q", src, "-")
	out := filepath.Join(dir, "out")
	if err := os.WriteFile(filepath.Join(dir, "in.gz"), gz2, 0o644); err != nil {
		t.Fatal(err)
	}
	mustGzfs(t, nil, "unpack", "-q", filepath.Join(dir, "in.gz"), out)
	sameBytes(t, "pack SRC - then unpack", readFile(t, out), data)
}

func TestDefaultNamesAndMode(t *testing.T) {
	t.Parallel()
	dir := testDir(t)
	data := textData(10000)
	src := writeFile(t, dir, "log.txt", data)
	if err := os.Chmod(src, 0o640); err != nil {
		t.Fatal(err)
	}
	mustGzfs(t, nil, "pack", src)
	st, err := os.Stat(src + ".gz")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("packed file mode %v, want the source's 0640", st.Mode().Perm())
	}
	if err := os.Remove(src); err != nil {
		t.Fatal(err)
	}
	mustGzfs(t, nil, "unpack", src+".gz")
	sameBytes(t, "unpack to default name", readFile(t, src), data)
}

func TestDestinationExists(t *testing.T) {
	t.Parallel()
	dir := testDir(t)
	src := writeFile(t, dir, "in", textData(5000))
	dst := writeFile(t, dir, "in.gz", []byte("keep me"))
	r := gzfs(t, nil, "pack", src)
	if r.code != 1 || !strings.Contains(string(r.stderr), "exists") {
		t.Fatalf("pack over an existing DST: exit %d, %s; want exit 1 and 'exists'", r.code, r.stderr)
	}
	sameBytes(t, "existing DST", readFile(t, dst), []byte("keep me"))

	out := writeFile(t, dir, "out", []byte("keep me too"))
	mustGzfs(t, nil, "pack", "-f", src)
	r = gzfs(t, nil, "unpack", dst, out)
	if r.code != 1 {
		t.Fatalf("unpack over an existing DST: exit %d, want 1", r.code)
	}
	sameBytes(t, "existing unpack DST", readFile(t, out), []byte("keep me too"))
	mustGzfs(t, nil, "unpack", "--force", dst, out)
	sameBytes(t, "forced unpack", readFile(t, out), textData(5000))
	if got := tempLeftovers(t, dir); len(got) > 0 {
		t.Errorf("temporary files left: %q", got)
	}
}

func TestPackErrorLeavesNoDestination(t *testing.T) {
	t.Parallel()
	dir := testDir(t)
	r := gzfs(t, nil, "pack", filepath.Join(dir, "missing"))
	if r.code != 1 || strings.Count(strings.TrimSpace(string(r.stderr)), "\n") != 0 {
		t.Fatalf("pack of a missing file: exit %d, stderr %q; want exit 1 and one line", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.gz")); err == nil {
		t.Error("pack of a missing file created a destination")
	}

	// A file size limit makes the writes fail like a full disk (EFBIG).
	src := writeFile(t, dir, "big", randData(4<<20))
	script := fmt.Sprintf("ulimit -f 1024; exec %s pack -q %s %s/big.gz", gzfsBin, src, dir)
	r = runCmd(t, "", nil, "sh", "-c", script)
	if r.code == 0 {
		t.Fatal("pack under a 512 KiB file size limit succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "big.gz")); err == nil {
		t.Error("failed pack left a destination")
	}
	if got := tempLeftovers(t, dir); len(got) > 0 {
		t.Errorf("failed pack left temporary files: %q", got)
	}
}

func TestPackInterrupted(t *testing.T) {
	t.Parallel()
	dir := testDir(t)
	dst := filepath.Join(dir, "out.gz")
	cmd := newGzfsCmd("pack", "-q", "-", dst)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Feed data without closing stdin, until the temporary file exists.
	chunk := randData(1 << 20)
	deadline := time.Now().Add(30 * time.Second)
	for len(tempLeftovers(t, dir)) == 0 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no temporary file appeared")
		}
		stdin.Write(chunk)
	}
	stdin.Write(chunk)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	stdin.Close()
	if cmd.ProcessState.ExitCode() != 130 {
		t.Errorf("interrupted pack: %v, want exit 130", err)
	}
	if _, err := os.Stat(dst); err == nil {
		t.Error("interrupted pack left a destination")
	}
	if got := tempLeftovers(t, dir); len(got) > 0 {
		t.Errorf("interrupted pack left temporary files: %q", got)
	}
}

func TestUnpackInterrupted(t *testing.T) {
	t.Parallel()
	dir := testDir(t)
	dst := filepath.Join(dir, "out")
	cmd := newGzfsCmd("unpack", "-q", "-", dst)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A gzip stream that never ends: a header and stored deflate blocks.
	stdin.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	block := append([]byte{0, 0xff, 0xff, 0, 0}, randData(0xffff)...)
	deadline := time.Now().Add(30 * time.Second)
	for len(tempLeftovers(t, dir)) == 0 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no temporary file appeared")
		}
		stdin.Write(block)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	stdin.Close()
	if code := cmd.ProcessState.ExitCode(); code != 128+int(syscall.SIGTERM) {
		t.Errorf("terminated unpack: %v, want exit %d", err, 128+int(syscall.SIGTERM))
	}
	if _, err := os.Stat(dst); err == nil {
		t.Error("interrupted unpack left a destination")
	}
	if got := tempLeftovers(t, dir); len(got) > 0 {
		t.Errorf("interrupted unpack left temporary files: %q", got)
	}
}
