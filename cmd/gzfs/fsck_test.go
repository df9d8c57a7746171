package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFsckNamesCorruptBlock(t *testing.T) {
	t.Parallel()
	dir := testDir(t)
	const bs = 61440
	data := randData(bs*10 + 100) // incompressible: a flipped byte breaks the CRC
	gz := packed(t, dir, "data", data)
	clean := packed(t, dir, "clean", textData(200000))
	mustGzfs(t, nil, "cat", "--offset", "0", "--length", "1", gz) // index written

	raw := readFile(t, gz)
	offs := members(t, raw)
	const bad = 5
	if len(offs) < 10 {
		t.Fatalf("only %d members", len(offs))
	}
	at := offs[bad] + 1000
	f, err := os.OpenFile(gz, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0x55}, 16), at); err != nil {
		t.Fatal(err)
	}
	f.Close()

	r := gzfs(t, nil, "fsck", gz)
	if r.code != 1 {
		t.Fatalf("fsck of a damaged file: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	out := string(r.stdout)
	for _, want := range []string{
		fmt.Sprintf("block %d ", bad),
		fmt.Sprintf("backing offset %d", offs[bad]),
		fmt.Sprintf("%d-%d", bad*bs, (bad+1)*bs),
		"1 of",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("fsck output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, fmt.Sprintf("block %d ", bad+1)) {
		t.Errorf("fsck blames a sound block:\n%s", out)
	}

	// Other blocks still read; the damaged one is an error.
	got := mustGzfs(t, nil, "cat", "--offset", fmt.Sprint(bs*7+10), "--length", "5000", gz)
	sameBytes(t, "cat of a sound range", got, data[bs*7+10:bs*7+5010])
	got = mustGzfs(t, nil, "cat", "--length", fmt.Sprint(bs*bad), gz)
	sameBytes(t, "cat of the sound prefix", got, data[:bs*bad])
	r = gzfs(t, nil, "cat", "--offset", fmt.Sprint(bs*bad+10), "--length", "10", gz)
	if r.code != 1 || strings.Count(string(r.stderr), "\n") != 1 || !strings.Contains(string(r.stderr), fmt.Sprintf("block %d ", bad)) {
		t.Errorf("cat of the damaged block: exit %d, stderr %q; want 1 and one line naming block %d", r.code, r.stderr, bad)
	}

	if r := gzfs(t, nil, "fsck", "-q", clean); r.code != 0 || len(r.stdout) != 0 {
		t.Errorf("fsck -q of a clean file: exit %d, stdout %q", r.code, r.stdout)
	}
	if r := gzfs(t, nil, "fsck", clean, gz); r.code != 1 {
		t.Errorf("fsck of a clean and a damaged file: exit %d, want 1", r.code)
	}
}

// sidecars lists the files of the sidecar store of dir.
func sidecars(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(filepath.Join(dir, ".gzfs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestIndexSidecarRebuilt(t *testing.T) {
	t.Parallel()
	data := textData(61440*25 + 99)
	for _, damage := range []string{"deleted", "garbled", "truncated", "repair"} {
		t.Run(damage, func(t *testing.T) {
			t.Parallel()
			dir := testDir(t)
			gz := packed(t, dir, "data", data)
			want := data[61440*3+5 : 61440*9]
			get := func() []byte {
				return mustGzfs(t, nil, "cat", "--offset", fmt.Sprint(61440*3+5), "--length", fmt.Sprint(len(want)), gz)
			}
			sameBytes(t, "before", get(), want)
			files := sidecars(t, dir)
			if len(files) == 0 {
				t.Fatal("no index sidecar in .gzfs after pack and cat")
			}
			for _, p := range files {
				var err error
				switch damage {
				case "deleted":
					err = os.Remove(p)
				case "garbled":
					b := readFile(t, p)
					for i := range b {
						b[i] ^= 0xa5
					}
					err = os.WriteFile(p, b, 0o644)
				case "truncated":
					err = os.Truncate(p, 10)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if damage == "repair" {
				r := gzfs(t, nil, "fsck", "--repair", gz)
				if r.code != 0 || !strings.Contains(string(r.stdout), "rebuilt") {
					t.Errorf("fsck --repair: exit %d, want 0 and an index 'rebuilt':\n%s%s", r.code, r.stdout, r.stderr)
				}
			}
			sameBytes(t, "after the index was "+damage, get(), want)
			sameBytes(t, "whole file", mustGzfs(t, nil, "cat", gz), data)
			if r := gzfs(t, nil, "fsck", "-q", gz); r.code != 0 {
				t.Errorf("fsck after rebuild: exit %d: %s%s", r.code, r.stdout, r.stderr)
			}
			stats := string(mustGzfs(t, nil, "stats", gz))
			if !strings.Contains(stats, fmt.Sprintf("logical size  %d ", len(data))) {
				t.Errorf("stats after rebuild:\n%s", stats)
			}
		})
	}
}

func TestTruncatedFile(t *testing.T) {
	t.Parallel()
	dir := testDir(t)
	const bs = 61440
	data := textData(bs*8 + 500)
	gz := packed(t, dir, "data", data)
	offs := members(t, readFile(t, gz))
	cut := offs[6] + 300 // inside block 6: blocks 0..5 stay whole
	if err := os.Truncate(gz, cut); err != nil {
		t.Fatal(err)
	}

	got := mustGzfs(t, nil, "cat", "--offset", "1000", "--length", "100000", gz)
	sameBytes(t, "cat of a whole part of a truncated file", got, data[1000:101000])
	r := gzfs(t, nil, "cat", gz)
	if r.code != 1 || !strings.Contains(string(r.stderr), "incomplete") {
		t.Errorf("cat of a truncated file to its end: exit %d, stderr %q; want 1 and 'incomplete'", r.code, r.stderr)
	}
	sameBytes(t, "what cat wrote before the error", r.stdout, data[:6*bs])
	out := filepath.Join(dir, "out")
	if r := gzfs(t, nil, "unpack", gz, out); r.code != 1 {
		t.Errorf("unpack of a truncated file: exit %d, want 1", r.code)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("unpack of a truncated file wrote a destination")
	}
	r = gzfs(t, nil, "fsck", gz)
	if r.code != 1 || !strings.Contains(string(r.stdout), fmt.Sprintf("backing offset %d", offs[6])) {
		t.Errorf("fsck of a truncated file: exit %d, stdout %q; want 1 and the offset of the cut block", r.code, r.stdout)
	}

	mustGzfs(t, nil, "fsck", "--repair", "-q", gz)
	// The cut keeps blocks 0..5, and maybe adds the 28-byte BGZF EOF member.
	if st, err := os.Stat(gz); err != nil || (st.Size() != offs[6] && st.Size() != offs[6]+28) {
		t.Fatalf("after fsck --repair: %v, size %d, want %d (+28)", err, st.Size(), offs[6])
	}
	mustGzfs(t, nil, "unpack", gz, out)
	sameBytes(t, "unpack after repair", readFile(t, out), data[:6*bs])
}

func TestDamagedHeaderIsNotCut(t *testing.T) {
	t.Parallel()
	dir := testDir(t)
	const bs = 61440
	data := textData(bs*12 + 7)
	gz := packed(t, dir, "data", data)
	mustGzfs(t, nil, "cat", "--length", "1", gz) // index written
	raw := readFile(t, gz)
	offs := members(t, raw)
	raw[offs[3]+16], raw[offs[3]+17] = 0xff, 0xff // BSIZE of block 3
	if err := os.WriteFile(gz, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	// With its index, the damage is one block; the rest reads.
	r := gzfs(t, nil, "fsck", gz)
	if r.code != 1 || !strings.Contains(string(r.stdout), "block 3 ") {
		t.Errorf("fsck with the index: exit %d, stdout %q; want 1 and block 3", r.code, r.stdout)
	}
	got := mustGzfs(t, nil, "cat", "--offset", fmt.Sprint(bs*8), "--length", "100", gz)
	sameBytes(t, "cat after the damaged header", got, data[bs*8:bs*8+100])

	// Without it, the engine bridges the damaged header from the next valid
	// one: still one bad block, and --repair cuts nothing.
	for _, p := range sidecars(t, dir) {
		os.Remove(p)
	}
	if r := gzfs(t, nil, "fsck", gz); r.code != 1 || !strings.Contains(string(r.stdout), "block 3 ") {
		t.Errorf("fsck without the index: exit %d, stdout %q; want 1 and block 3", r.code, r.stdout)
	}
	if r := gzfs(t, nil, "fsck", "--repair", gz); r.code != 1 {
		t.Errorf("fsck --repair: exit %d, stderr %q; want 1 (the block stays damaged)", r.code, r.stderr)
	}
	sameBytes(t, "file after repair", readFile(t, gz), raw)
	got = mustGzfs(t, nil, "cat", "--offset", fmt.Sprint(bs*8), "--length", "100", gz)
	sameBytes(t, "cat after the damaged header, index rebuilt", got, data[bs*8:bs*8+100])
	got = mustGzfs(t, nil, "cat", "--length", fmt.Sprint(bs*3), gz)
	sameBytes(t, "cat before the damaged header", got, data[:bs*3])
}

// TestTrailingBytes: bytes after the last block that no gzfs write left
// (text appended to the file) are not cut by a read; cat gives every
// block, then fails as gzip -d would warn; fsck reports them and
// --repair cuts them.
func TestTrailingBytes(t *testing.T) {
	t.Parallel()
	dir := testDir(t)
	data := textData(200000)
	gz := packed(t, dir, "data", data)
	withText := append(readFile(t, gz), "trailing text\n"...)
	if err := os.WriteFile(gz, withText, 0o644); err != nil {
		t.Fatal(err)
	}
	r := gzfs(t, nil, "cat", gz)
	sameBytes(t, "cat of a file with trailing text", r.stdout, data)
	if !bytes.Equal(readFile(t, gz), withText) {
		t.Fatal("cat changed the file")
	}
	r = gzfs(t, nil, "fsck", gz)
	if r.code != 1 || !strings.Contains(string(r.stdout), "--repair") {
		t.Errorf("fsck of a file with trailing text: exit %d, stdout %q; want 1 and the --repair hint", r.code, r.stdout)
	}
	if !bytes.Equal(readFile(t, gz), withText) {
		t.Fatal("fsck without --repair changed the file")
	}
	mustGzfs(t, nil, "fsck", "--repair", "-q", gz)
	if r := gzfs(t, nil, "fsck", gz); r.code != 0 {
		t.Errorf("fsck after --repair: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	sameBytes(t, "cat after repair", mustGzfs(t, nil, "cat", gz), data)
}

// TestFsckRepairKeepsCutFirstMember: a file whose first member is cut
// short (a new file's first write caught by a power loss, or a partial
// copy) is reported, and --repair empties it to a valid gzip stream while
// the cut member stays in the sidecar store (gzip -dc recovers its start);
// a copy kept earlier is not removed by the repair's index drop.
func TestFsckRepairKeepsCutFirstMember(t *testing.T) {
	t.Parallel()
	dir := testDir(t)
	gz := packed(t, dir, "first", textData(200000))
	raw := readFile(t, gz)
	cut := raw[:5000]
	if err := os.WriteFile(gz, cut, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := gzfs(t, nil, "fsck", gz); r.code != 1 || !strings.Contains(string(r.stdout), "incomplete") {
		t.Fatalf("fsck of a cut first member: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	mustGzfs(t, nil, "fsck", "--repair", gz)
	if got := readFile(t, gz); len(got) != 28 {
		t.Fatalf("after repair the file has %d bytes, want the 28-byte EOF marker", len(got))
	}
	mustGzfs(t, nil, "fsck", gz)
	var kept [][]byte
	filepath.WalkDir(filepath.Join(dir, ".gzfs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".tail") {
			kept = append(kept, readFile(t, p))
		}
		return nil
	})
	if len(kept) != 1 || !bytes.Equal(kept[0], cut) {
		t.Fatalf("copies of the cut member: %d, want 1 holding the %d bytes", len(kept), len(cut))
	}
}

// TestFsckNotesMissingEOFMarker: a gzfs file cut exactly at a block
// boundary is valid gzip, and every block checks; fsck says that the EOF
// marker gzfs always writes is missing (exit 0, as bgzip only warns).
func TestFsckNotesMissingEOFMarker(t *testing.T) {
	dir := testDir(t)
	src := writeFile(t, dir, "in", textData(300<<10))
	gz := filepath.Join(dir, "in.gz")
	mustGzfs(t, nil, "pack", "-q", src, gz)
	if r := gzfs(t, nil, "fsck", "-q", gz); r.code != 0 || len(r.stdout) != 0 {
		t.Fatalf("fsck -q of a whole file: exit %d, %q", r.code, r.stdout)
	}
	whole := readFile(t, gz)
	os.WriteFile(gz, whole[:len(whole)-28], 0o644)
	r := gzfs(t, nil, "fsck", "-q", gz)
	if r.code != 0 || !bytes.Contains(r.stdout, []byte("no BGZF end-of-file marker")) {
		t.Errorf("fsck -q of a file without its EOF marker: exit %d, %q; want 0 and a note", r.code, r.stdout)
	}
}
