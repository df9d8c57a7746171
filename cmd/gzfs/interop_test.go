package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// packed writes data to dir/name and packs it with gzfs; it returns the
// path of the .gz file.
func packed(t *testing.T, dir, name string, data []byte, flags ...string) string {
	t.Helper()
	src := writeFile(t, dir, name, data)
	mustGzfs(t, nil, append(append([]string{"pack", "-q"}, flags...), src)...)
	return src + ".gz"
}

// mustRun runs an external tool and fails the test unless it exits 0.
func mustRun(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	r := runCmd(t, "", stdin, name, args...)
	if r.code != 0 {
		t.Fatalf("%s %q: exit %d: %s", name, args, r.code, r.stderr)
	}
	return r.stdout
}

func TestGzipToolsReadPackedFiles(t *testing.T) {
	needTools(t, "gzip", "zcat", "bgzip", "pigz")
	t.Parallel()
	dir := testDir(t)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"text", textData(61440*12 + 5)},
		{"random", randData(400000)},
	} {
		gz := packed(t, dir, tc.name, tc.data)
		mustRun(t, nil, "gzip", "-t", gz)
		mustRun(t, nil, "pigz", "-t", gz)
		mustRun(t, nil, "bgzip", "-t", gz)
		sameBytes(t, tc.name+": zcat", mustRun(t, nil, "zcat", gz), tc.data)
		sameBytes(t, tc.name+": pigz -dc", mustRun(t, nil, "pigz", "-dc", gz), tc.data)
		sameBytes(t, tc.name+": bgzip -dc", mustRun(t, nil, "bgzip", "-dc", gz), tc.data)
	}
}

func TestGZIMatchesBgzipRandomAccess(t *testing.T) {
	needTools(t, "bgzip")
	t.Parallel()
	dir := testDir(t)
	data := textData(61440*30 + 1234)
	for _, flags := range [][]string{nil, {"-b", "32K"}} {
		gz := packed(t, dir, fmt.Sprintf("data%d", len(flags)), data, flags...)
		mustGzfs(t, nil, "index", "--gzi", gz)
		if st, err := os.Stat(gz + ".gzi"); err != nil || st.Size() < 8 {
			t.Fatalf("index --gzi did not write %s.gzi: %v", gz, err)
		}
		n := len(data)
		for _, r := range [][2]int{{0, 100}, {61439, 2}, {61440, 61440}, {100000, 300000}, {n - 50, 50}, {n / 2, 1}} {
			off, length := strconv.Itoa(r[0]), strconv.Itoa(r[1])
			want := data[r[0] : r[0]+r[1]]
			bg := mustRun(t, nil, "bgzip", "-b", off, "-s", length, gz)
			sameBytes(t, "bgzip -b "+off+" -s "+length, bg, want)
			ours := mustGzfs(t, nil, "cat", "--offset", off, "--length", length, gz)
			sameBytes(t, "gzfs cat --offset "+off+" --length "+length, ours, bg)
		}
	}
}

func TestReadsBgzipFiles(t *testing.T) {
	needTools(t, "bgzip")
	t.Parallel()
	dir := testDir(t)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"text", textData(1 << 20)},
		{"random", randData(500000)},
		{"small", []byte("hello\n")},
	} {
		src := writeFile(t, dir, tc.name, tc.data)
		mustRun(t, nil, "bgzip", "-f", "-k", src)
		gz := src + ".gz"
		sameBytes(t, tc.name+": cat of a bgzip file", mustGzfs(t, nil, "cat", gz), tc.data)
		if n := len(tc.data); n > 70000 {
			got := mustGzfs(t, nil, "cat", "--offset", "65000", "--length", "1000", gz)
			sameBytes(t, tc.name+": range of a bgzip file", got, tc.data[65000:66000])
		}
		out := filepath.Join(dir, tc.name+".out")
		mustGzfs(t, nil, "unpack", "-q", gz, out)
		sameBytes(t, tc.name+": unpack of a bgzip file", readFile(t, out), tc.data)
		mustGzfs(t, nil, "stats", gz)
		if r := gzfs(t, nil, "fsck", "-q", gz); r.code != 0 {
			t.Errorf("fsck of a clean bgzip file: exit %d: %s%s", r.code, r.stdout, r.stderr)
		}
	}
}

func TestUnpackPlainGzipFallback(t *testing.T) {
	needTools(t, "gzip", "pigz")
	t.Parallel()
	dir := testDir(t)
	data := textData(700000)
	src := writeFile(t, dir, "plain", data)

	gz := mustRun(t, nil, "gzip", "-c", src)
	pz := mustRun(t, nil, "pigz", "-c", src)
	multi := append(append([]byte{}, gz...), mustRun(t, []byte("tail\n"), "gzip", "-c")...)
	for _, tc := range []struct {
		name string
		gz   []byte
		want []byte
	}{
		{"gzip", gz, data},
		{"pigz", pz, data},
		{"multi-member", multi, append(append([]byte{}, data...), "tail\n"...)},
	} {
		p := writeFile(t, dir, tc.name+".gz", tc.gz)
		out := filepath.Join(dir, tc.name+".out")
		mustGzfs(t, nil, "unpack", "-q", p, out)
		sameBytes(t, tc.name+": unpack fallback", readFile(t, out), tc.want)
		got := mustGzfs(t, nil, "cat", "--offset", "1000", "--length", "100", p)
		sameBytes(t, tc.name+": cat of plain gzip", got, tc.want[1000:1100])
		if r := gzfs(t, nil, "fsck", p); r.code != 0 || !bytes.Contains(r.stdout, []byte("ok")) {
			t.Errorf("fsck of a clean %s file: exit %d: %s%s", tc.name, r.code, r.stdout, r.stderr)
		}
	}

	// A truncated plain gzip file is an error, not silent short output.
	p := writeFile(t, dir, "cut.gz", gz[:len(gz)/2])
	if r := gzfs(t, nil, "unpack", p, filepath.Join(dir, "cut.out")); r.code != 1 {
		t.Errorf("unpack of a truncated gzip file: exit %d, want 1", r.code)
	}
	if _, err := os.Stat(filepath.Join(dir, "cut.out")); err == nil {
		t.Error("failed unpack left a destination")
	}
}
