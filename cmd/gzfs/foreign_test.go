package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gzfs/gzfs/gzindex"
)

// TestForeignIndex: 'gzfs index' builds the checkpoint index of a plain
// gzip file, 'gzfs stats' shows it, 'gzfs cat --offset' and 'gzfs unpack'
// read through it and give gzip's bytes; a changed file gets a new index.
func TestForeignIndex(t *testing.T) {
	needTools(t, "gzip")
	if !gzindex.Supported {
		t.Skip("pure-Go build: no checkpoint indexes (make test builds with libdeflate)")
	}
	dir := testDir(t)
	data := textData(12 << 20)
	raw := writeFile(t, dir, "app.log", data)
	if out, err := exec.Command("gzip", "-6", raw).CombinedOutput(); err != nil {
		t.Fatalf("gzip: %v %s", err, out)
	}
	gz := raw + ".gz"
	if out := mustGzfs(t, nil, "stats", gz); !bytes.Contains(out, []byte("checkpoint index: missing")) {
		t.Fatalf("stats before: %s", out)
	}
	mustGzfs(t, nil, "index", "--span", "1M", gz)
	out := mustGzfs(t, nil, "stats", gz)
	if !bytes.Contains(out, []byte("checkpoint index: valid")) || !bytes.Contains(out, []byte("logical size  12582912")) {
		t.Fatalf("stats after: %s", out)
	}
	for _, r := range [][2]int64{{0, 100}, {5<<20 + 3, 70000}, {12<<20 - 10, 100}, {1 << 20, 3 << 20}} {
		got := mustGzfs(t, nil, "cat", "--offset", itoa(r[0]), "--length", itoa(r[1]), gz)
		sameBytes(t, "cat "+itoa(r[0]), got, data[r[0]:min(r[0]+r[1], int64(len(data)))])
	}
	mustGzfs(t, nil, "unpack", gz, filepath.Join(dir, "out"))
	sameBytes(t, "unpack", readFile(t, filepath.Join(dir, "out")), data)
	// BGZF files need no checkpoints; --gzi is for them.
	if r := gzfs(t, nil, "index", "--gzi", gz); r.code == 0 || !strings.Contains(string(r.stderr), "not BGZF") {
		t.Fatalf("index --gzi of plain gzip: %d %s", r.code, r.stderr)
	}
	// The file changes: the old index is not used.
	data2 := textData(3 << 20)[1000:]
	os.Remove(gz)
	writeFile(t, dir, "app.log", data2)
	if out, err := exec.Command("gzip", "-6", raw).CombinedOutput(); err != nil {
		t.Fatalf("gzip: %v %s", err, out)
	}
	got := mustGzfs(t, nil, "cat", "--offset", "100000", "--length", "5000", gz)
	sameBytes(t, "cat of the new file", got, data2[100000:105000])
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestExportIndexedGzip: Python's indexed_gzip (Debian's
// python3-indexed-gzip, installed by make deps) imports the index that
// 'gzfs index --gzidx' writes and reads the same bytes as gzip at random
// offsets, across member boundaries.
func TestExportIndexedGzip(t *testing.T) {
	needTools(t, "gzip")
	if !gzindex.Supported {
		t.Skip("pure-Go build: no checkpoint indexes (make test builds with libdeflate)")
	}
	py := "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import indexed_gzip").CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3-indexed-gzip is not installed (make deps installs it): %v %s", err, out)
		}
		t.Skipf("python3-indexed-gzip is not installed: %s", out)
	}
	dir := testDir(t)
	data := textData(9 << 20)
	var gz []byte
	for i, part := range [][]byte{data[:5<<20], data[5<<20:]} {
		p := writeFile(t, dir, "part"+itoa(int64(i)), part)
		if out, err := exec.Command("gzip", "-6", p).CombinedOutput(); err != nil {
			t.Fatalf("gzip: %v %s", err, out)
		}
		gz = append(gz, readFile(t, p+".gz")...)
	}
	path := writeFile(t, dir, "two.gz", gz)
	mustGzfs(t, nil, "index", "--gzidx", "--span", "1M", path)
	script := `
import sys, indexed_gzip
f = indexed_gzip.IndexedGzipFile(sys.argv[1])
f.import_index(sys.argv[1] + ".gzidx")
for off in sys.argv[2:]:
    f.seek(int(off))
    sys.stdout.buffer.write(f.read(1000))
`
	offs := []int64{0, 1, 1<<20 + 7, 5<<20 - 500, 5 << 20, 7<<20 + 3, 9<<20 - 1000}
	args := []string{"-c", script, path}
	var want []byte
	for _, o := range offs {
		args = append(args, itoa(o))
		want = append(want, data[o:min(o+1000, int64(len(data)))]...)
	}
	out, err := exec.Command(py, args...).Output()
	if err != nil {
		t.Fatalf("indexed_gzip: %v", err)
	}
	sameBytes(t, "indexed_gzip reads", out, want)
}

// TestPackInPlace: 'gzfs pack --in-place' turns a plain gzip file into
// BGZF under its own name, same bytes and mode; a BGZF file is left alone.
func TestPackInPlace(t *testing.T) {
	needTools(t, "gzip")
	dir := testDir(t)
	data := textData(3 << 20)
	raw := writeFile(t, dir, "app.log", data)
	os.Chmod(raw, 0o640)
	if out, err := exec.Command("gzip", "-6", raw).CombinedOutput(); err != nil {
		t.Fatalf("gzip: %v %s", err, out)
	}
	gz := raw + ".gz"
	mustGzfs(t, nil, "pack", "--in-place", gz)
	if ok, err := sniffBGZF(gz); err != nil || !ok {
		t.Fatalf("not BGZF after pack --in-place: %v", err)
	}
	out, err := exec.Command("gzip", "-dc", gz).Output()
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "gzip -dc after pack --in-place", out, data)
	if st, _ := os.Stat(gz); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", st.Mode())
	}
	before := readFile(t, gz)
	mustGzfs(t, nil, "pack", "--in-place", gz)
	sameBytes(t, "a BGZF file packed in place", readFile(t, gz), before)
	if left := tempLeftovers(t, dir); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// TestDamagedForeignFails: once a truncated gzip file has its checkpoint
// index (which ends where the data stops decoding), 'gzfs cat' and 'gzfs
// unpack' still fail instead of giving a short file with exit 0; a file of
// only a gzip header is called truncated, not empty.
func TestDamagedForeignFails(t *testing.T) {
	needTools(t, "gzip")
	if !gzindex.Supported {
		t.Skip("pure-Go build: no checkpoint indexes (make test builds with libdeflate)")
	}
	dir := testDir(t)
	data := textData(6 << 20)
	raw := writeFile(t, dir, "app.log", data)
	if out, err := exec.Command("gzip", "-6", raw).CombinedOutput(); err != nil {
		t.Fatalf("gzip: %v %s", err, out)
	}
	gz := raw + ".gz"
	whole := readFile(t, gz)
	os.WriteFile(gz, whole[:len(whole)/2], 0o644)
	if r := gzfs(t, nil, "index", gz); r.code == 0 {
		t.Fatalf("index of a truncated file: exit 0")
	}
	r := gzfs(t, nil, "cat", gz)
	if r.code != 1 || len(r.stdout) == 0 || len(r.stdout) >= len(data) || !bytes.Equal(r.stdout, data[:len(r.stdout)]) {
		t.Errorf("cat of a truncated, indexed file: exit %d, %d bytes (of %d); want exit 1 after the readable prefix", r.code, len(r.stdout), len(data))
	}
	if n := bytes.Count(r.stderr, []byte("app.log.gz")); n != 1 || !bytes.Contains(r.stderr, []byte("corrupt")) {
		t.Errorf("cat's error should name the file once and say corrupt: %q", r.stderr)
	}
	if r := gzfs(t, nil, "unpack", "-f", gz, filepath.Join(dir, "out")); r.code == 0 {
		t.Errorf("unpack of a truncated, indexed file: exit 0")
	}
	os.WriteFile(gz, whole[:10], 0o644)
	if r := gzfs(t, nil, "cat", gz); r.code != 1 || !bytes.Contains(r.stderr, []byte("truncated")) {
		t.Errorf("cat of a lone gzip header: exit %d, %q; want 1 and 'truncated'", r.code, r.stderr)
	}
}

// TestPackInPlaceKeepsWhatItCannotConvert: a gzip file whose second member
// header is damaged, or with text after its last member, is left as it is
// (exit 1, the error naming the file once, no temporary file left): the
// converted file would not hold those bytes.
func TestPackInPlaceKeepsWhatItCannotConvert(t *testing.T) {
	needTools(t, "gzip")
	dir := testDir(t)
	one := mustRun(t, textData(200<<10), "gzip", "-6", "-c")
	two := mustRun(t, textData(100 << 10)[7:], "gzip", "-6", "-c")
	two[3] = 0xff // FLG with reserved bits: gzip -d fails on it too
	for name, content := range map[string][]byte{
		"damaged.gz":  append(bytes.Clone(one), two...),
		"trailing.gz": append(bytes.Clone(one), "trailing text\n"...),
	} {
		gz := filepath.Join(dir, name)
		os.WriteFile(gz, content, 0o644)
		r := gzfs(t, nil, "pack", "--in-place", gz)
		if r.code != 1 || bytes.Count(r.stderr, []byte(name)) != 1 || !bytes.Contains(r.stderr, []byte("corrupt")) {
			t.Errorf("pack --in-place %s: exit %d, %q; want 1 and one error naming the file once", name, r.code, r.stderr)
		}
		sameBytes(t, name+" after a refused pack --in-place", readFile(t, gz), content)
	}
	if left := tempLeftovers(t, dir); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
