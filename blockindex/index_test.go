package blockindex

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gzfs/gzfs/internal/procstat"
)

func fill(t testing.TB, x *Index, n int64, b int64) {
	t.Helper()
	for i := int64(0); i < n; i++ {
		if err := x.Set(i, Record{Offset: i * 1000, Logical: i * b, Size: 1000, Length: uint32(b), Pad: 2}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCreateSetReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.idx")
	x, err := Create(path, FileID{Ino: 42}, 61440)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, x, 5000, 61440) // forces several remaps
	x.SetState(5000*61440, 5000*1000, 7)
	if !x.Uniform() {
		t.Fatal("uniform index lost its flag")
	}
	if err := x.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	y, err := Open(path, FileID{Ino: 42}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	if y.Len() != 5000 || y.LogicalSize() != 5000*61440 || y.BackingSize() != 5000000 || y.Tail() != 7 {
		t.Fatalf("reopened header: len %d logical %d backing %d tail %d", y.Len(), y.LogicalSize(), y.BackingSize(), y.Tail())
	}
	for _, off := range []int64{0, 61439, 61440, 123456789, 5000*61440 - 1} {
		i, err := y.Find(off)
		if err != nil || i != off/61440 {
			t.Fatalf("Find(%d) = %d, %v", off, i, err)
		}
		r, err := y.At(i)
		if err != nil || r.Logical > off || r.LogicalEnd() <= off {
			t.Fatalf("record %d = %+v, %v", i, r, err)
		}
	}
}

func TestNonUniformBinarySearch(t *testing.T) {
	x, err := Create(filepath.Join(t.TempDir(), "x.idx"), FileID{Ino: 1}, 65280)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	var logical int64
	lengths := []uint32{100, 65280, 0, 5, 65280, 7}
	for i, l := range lengths {
		if err := x.Set(int64(i), Record{Offset: int64(i) * 10, Logical: logical, Size: 10, Length: l}); err != nil {
			t.Fatal(err)
		}
		logical += int64(l)
	}
	if x.Uniform() {
		t.Fatal("irregular blocks marked uniform")
	}
	want := map[int64]int64{0: 0, 99: 0, 100: 1, 65379: 1, 65380: 3, 65384: 3, 65385: 4, 130665: 5, 130671: 5}
	for off, blk := range want {
		got, err := x.Find(off)
		if err != nil || got != blk {
			t.Errorf("Find(%d) = %d, %v; want %d", off, got, err, blk)
		}
	}
}

func TestOpenRejectsDamage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.idx")
	x, err := Create(path, FileID{Ino: 9}, 4096)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, x, 10, 4096)
	x.SetState(40960, 10000, 1)
	x.Close()
	good, _ := os.ReadFile(path)

	damage := map[string]func([]byte) []byte{
		"truncated":   func(b []byte) []byte { return b[:HeaderSize+5] },
		"short":       func(b []byte) []byte { return b[:20] },
		"magic":       func(b []byte) []byte { b[0] = 'X'; return b },
		"header byte": func(b []byte) []byte { b[33] ^= 1; return b },
		"version":     func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 99); return b },
	}
	for name, f := range damage {
		os.WriteFile(path, f(bytes.Clone(good)), 0o644)
		if y, err := Open(path, FileID{Ino: 9}, false); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Open gave %v", name, err)
			if y != nil {
				y.Close()
			}
		}
	}
	os.WriteFile(path, good, 0o644)
	if _, err := Open(path, FileID{Ino: 10}, false); !errors.Is(err, ErrInvalid) {
		t.Errorf("index of another inode accepted: %v", err)
	}
	// Same inode number, another file (the number was reused).
	if _, err := Open(path, FileID{Ino: 9, Birth: 12345}, false); !errors.Is(err, ErrInvalid) {
		t.Errorf("index of another file with the same inode number accepted: %v", err)
	}
	// A garbled record is caught when read.
	bad := bytes.Clone(good)
	bad[HeaderSize+3*RecordSize+2] ^= 0xff
	os.WriteFile(path, bad, 0o644)
	y, err := Open(path, FileID{Ino: 9}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	if _, err := y.At(3); !errors.Is(err, ErrInvalid) {
		t.Errorf("garbled record read: %v", err)
	}
}

func TestExportGZI(t *testing.T) {
	x, _ := Create(filepath.Join(t.TempDir(), "x.idx"), FileID{Ino: 1}, 100)
	defer x.Close()
	fill(t, x, 3, 100)
	var buf bytes.Buffer
	if err := x.ExportGZI(&buf); err != nil {
		t.Fatal(err)
	}
	want := []uint64{2, 1000, 100, 2000, 200}
	for i, w := range want {
		if got := binary.LittleEndian.Uint64(buf.Bytes()[8*i:]); got != w {
			t.Fatalf("gzi word %d = %d, want %d", i, got, w)
		}
	}
}

// FuzzOpen: any bytes as an index file are refused or served by Open and
// OpenView without a panic, and OpenView accepts nothing Open refuses.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	seed := filepath.Join(dir, "seed.idx")
	x, _ := Create(seed, FileID{Ino: 1}, 61440)
	fill(f, x, 3, 61440)
	x.SetState(3*61440, 3000, 5)
	x.Close()
	b, _ := os.ReadFile(seed)
	f.Add(b)
	f.Add(b[:HeaderSize])
	f.Add([]byte("GZFSIDX1"))
	probe := func(y *Index) { // must not panic
		for i := int64(0); i < y.Len() && i < 100; i++ {
			y.At(i)
		}
		if y.LogicalSize() > 0 && y.Len() > 0 {
			y.Find(y.LogicalSize() - 1)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "f.idx")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		y, err := Open(path, FileID{Ino: 1}, true)
		if err == nil {
			defer y.Close()
			probe(y)
		}
		v, verr := OpenView(path, FileID{Ino: 1}) // the same checks, on its own copies
		if (err == nil) != (verr == nil) && !errors.Is(verr, ErrInvalid) {
			t.Fatalf("Open: %v; OpenView: %v", err, verr)
		}
		if verr == nil {
			defer v.Close()
			probe(v)
		}
	})
}

// TestAppendRun appends runs of records in bulk: every record reads back
// with its checksum, offsets and logical offsets follow each other, and the
// uniform flag holds only while the run keeps the block size.
func TestAppendRun(t *testing.T) {
	x, err := Create(filepath.Join(t.TempDir(), "x.idx"), FileID{Ino: 1, Birth: 2}, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	fill(t, x, 3, 4096) // offsets 0, 1000, 2000
	if err := x.AppendRun(5000, Record{Offset: 3000, Logical: 3 * 4096, Size: 50, Length: 4096, Pad: 7}); err != nil {
		t.Fatal(err)
	}
	if x.Len() != 5003 || !x.Uniform() {
		t.Fatalf("len %d uniform %v", x.Len(), x.Uniform())
	}
	for i := int64(3); i < x.Len(); i++ {
		r, err := x.At(i)
		want := Record{Offset: 3000 + (i-3)*50, Logical: i * 4096, Size: 50, Length: 4096, Pad: 7}
		if err != nil || r != want {
			t.Fatalf("record %d: %+v, %v; want %+v", i, r, err, want)
		}
	}
	if k, err := x.Find(4000 * 4096); err != nil || k != 4000 {
		t.Fatalf("Find: %d, %v", k, err)
	}
	if err := x.AppendRun(2, Record{Offset: 1 << 20, Logical: 5003 * 4096, Size: 50, Length: 100}); err != nil {
		t.Fatal(err)
	}
	if x.Uniform() {
		t.Fatal("a run of short blocks kept the uniform flag")
	}
}

// TestOpenView: a view opened on another process's sidecar keeps the
// header and last record of the moment (the writer's growth does not
// reach them; reading past its records is an error, not a crash), reads
// the writer's rewrites of other records, refuses a torn header, and
// unmaps the sidecar at Close.
func TestOpenView(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.idx")
	x, err := Create(path, FileID{Ino: 1}, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	for i := int64(0); i < 5; i++ {
		if err := x.Set(i, Record{Offset: i * 100, Logical: i * 4096, Size: 100, Length: 4096}); err != nil {
			t.Fatal(err)
		}
	}
	x.SetState(5*4096, 500, 7)
	if _, err := OpenView(path, FileID{Ino: 2}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("view for another file: %v, want ErrInvalid", err)
	}
	s, err := OpenView(path, FileID{Ino: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(5); i < 300; i++ { // the writer grows the file past it
		if err := x.Set(i, Record{Offset: i * 100, Logical: i * 4096, Size: 100, Length: 4096}); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Set(2, Record{Offset: 77777, Logical: 2 * 4096, Size: 100, Length: 4096}); err != nil {
		t.Fatal(err)
	}
	x.SetState(300*4096, 30000, 9)
	if s.Len() != 5 || s.LogicalSize() != 5*4096 || s.Tail() != 7 {
		t.Fatalf("view changed with the original: %d records, size %d", s.Len(), s.LogicalSize())
	}
	if r, err := s.At(4); err != nil || r.Offset != 400 {
		t.Fatalf("record 4 of the view: %+v %v", r, err)
	}
	if r, err := s.At(2); err != nil || r.Offset != 77777 {
		t.Fatalf("record 2 of the view: %+v %v (want the rewritten one)", r, err)
	}
	if _, err := s.At(5); err == nil {
		t.Fatal("a record past the view's end read without error")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(maps, []byte(path)); n != 1 {
		t.Fatalf("%d mappings of the sidecar after the view's Close, want 1 (the writer's)", n)
	}
	last := HeaderSize + (x.Len()-1)*RecordSize
	x.mem[last] ^= 1 // a last record torn by a change in flight
	if _, err := OpenView(path, FileID{Ino: 1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("view of a torn last record: %v, want ErrInvalid", err)
	}
	x.mem[last] ^= 1
	x.mem[30] ^= 1 // a header torn by a change in flight
	if _, err := OpenView(path, FileID{Ino: 1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("view of a torn header: %v, want ErrInvalid", err)
	}
}

// TestView: a view keeps the header and the last record as they were when
// it was made; its other records are read from the mapping, so a record a
// writer rewrites reads as the new one, and in a view of a uniform index a
// record that no longer describes its block, or a torn one, is ErrInvalid.
func TestView(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.idx")
	x, err := Create(path, FileID{Ino: 1}, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	set := func(i, off int64, length uint32) {
		t.Helper()
		if err := x.Set(i, Record{Offset: off, Logical: i * 4096, Size: 100, Length: length}); err != nil {
			t.Fatal(err)
		}
	}
	for i := int64(0); i < 49; i++ {
		set(i, i*100, 4096)
	}
	set(49, 4900, 1000) // a partial last block
	x.SetState(49*4096+1000, 5000, 3)
	v := x.View()
	defer v.Close()
	if !v.Uniform() || v.Len() != 50 || v.LogicalSize() != 49*4096+1000 || v.BlockSize() != 4096 || v.Tail() != 3 {
		t.Fatalf("view: uniform %v, %d records, size %d", v.Uniform(), v.Len(), v.LogicalSize())
	}
	// The writer fills the last block, appends, rewrites block 7 elsewhere,
	// then cuts the file to 20 blocks and writes block 30 as a short one.
	set(49, 9000, 4096)
	for i := int64(50); i < 60; i++ {
		set(i, i*100, 4096)
	}
	set(7, 99999, 4096)
	x.SetState(60*4096, 12000, 4)
	if v.Len() != 50 || v.LogicalSize() != 49*4096+1000 || v.Tail() != 3 {
		t.Fatalf("the view's header followed the writer: %d records, size %d", v.Len(), v.LogicalSize())
	}
	if r, err := v.At(49); err != nil || r.Offset != 4900 || r.Length != 1000 {
		t.Fatalf("last record of the view: %+v %v (want the one it was made with)", r, err)
	}
	if r, err := v.At(7); err != nil || r.Offset != 99999 {
		t.Fatalf("record 7 of the view: %+v %v (want the rewritten one)", r, err)
	}
	if _, err := v.At(50); err == nil {
		t.Fatal("a record past the view's count read without error")
	}
	x.Truncate(20)
	set(20, 2000, 4096)
	if err := x.Set(21, Record{Offset: 2100, Logical: 21 * 4096, Size: 100, Length: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.At(21); !errors.Is(err, ErrInvalid) {
		t.Fatalf("record 21, now a short last block, read through a uniform view: %v, want ErrInvalid", err)
	}
	// A torn record (a writer midway through it) fails its checksum.
	x.mem[HeaderSize+30*RecordSize] ^= 1
	if _, err := v.At(30); !errors.Is(err, ErrInvalid) {
		t.Fatalf("torn record: %v, want ErrInvalid", err)
	}
	if r, err := v.At(31); err != nil || r.Offset != 3100 {
		t.Fatalf("record 31: %+v %v", r, err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a write through a view did not panic")
			}
		}()
		v.Set(3, Record{Logical: 3 * 4096, Length: 4096})
	}()
}

// TestViewOfShrunkFile: a view of an index whose file another program cut
// short under the mapping reads the lost records as ErrInvalid; the
// process does not die of SIGBUS.
func TestViewOfShrunkFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.idx")
	x, err := Create(path, FileID{Ino: 1}, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	for i := int64(0); i < 1000; i++ {
		if err := x.Set(i, Record{Offset: i * 100, Logical: i * 4096, Size: 100, Length: 4096}); err != nil {
			t.Fatal(err)
		}
	}
	v := x.View()
	defer v.Close()
	if err := os.Truncate(path, HeaderSize); err != nil {
		t.Fatal(err)
	}
	if _, err := v.At(900); !errors.Is(err, ErrInvalid) {
		t.Fatalf("record past the cut: %v, want ErrInvalid", err)
	}
	if r, err := v.At(999); err != nil || r.Offset != 99900 {
		t.Fatalf("the view's own last record: %+v %v", r, err)
	}
}

// TestPassKeepsIndexOutOfMemory: writing the index of a huge file record
// by record, then reading it through, then through a view, leaves a few
// pages of it resident in the process, not the whole mapping (32 MB here).
func TestPassKeepsIndexOutOfMemory(t *testing.T) {
	const n = 1 << 20 // records: 32 MiB of index, a 60 GiB file
	const slack = 4 << 20
	path := filepath.Join(t.TempDir(), "x.idx")
	x, err := Create(path, FileID{Ino: 1}, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	base := procstat.RssFile(t)
	for i := int64(0); i < n; i++ {
		if err := x.Set(i, Record{Offset: i * 100, Logical: i * 4096, Size: 100, Length: 4096}); err != nil {
			t.Fatal(err)
		}
	}
	if grew := procstat.RssFile(t) - base; grew > slack {
		t.Errorf("writing %d records left %d MiB of the index resident", n, grew>>20)
	}
	pass := func(v *Index, what string) {
		t.Helper()
		base := procstat.RssFile(t)
		for i := int64(0); i < n; i++ {
			if r, err := v.At(i); err != nil || r.Offset != i*100 {
				t.Fatalf("%s: record %d: %+v %v", what, i, r, err)
			}
		}
		if grew := procstat.RssFile(t) - base; grew > slack {
			t.Errorf("%s: a pass over %d records left %d MiB of the index resident", what, n, grew>>20)
		}
	}
	pass(x, "index")
	v := x.View()
	defer v.Close()
	pass(v, "view")
}

// TestCheckUniform: an index whose records are uniform again after a pass
// that cleared the flag (a rebuild records the trailing EOF marker, then
// drops it) gets the flag back, in the file too; one with an irregular
// block keeps it cleared.
func TestCheckUniform(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.idx")
	x, err := Create(path, FileID{Ino: 7}, 61440)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, x, 99, 61440)
	last := Record{Offset: 99 * 1000, Logical: 99 * 61440, Size: 500, Length: 1000}
	eof := Record{Offset: 99*1000 + 500, Logical: 99*61440 + 1000, Size: 28}
	for i, r := range []Record{last, eof} {
		if err := x.Set(int64(99+i), r); err != nil {
			t.Fatal(err)
		}
	}
	if x.Uniform() {
		t.Fatal("uniform with an empty record after a short block")
	}
	x.Truncate(100)
	if u, err := x.CheckUniform(); err != nil || !u || !x.Uniform() {
		t.Fatalf("CheckUniform after dropping the EOF record: %v %v, flag %v", u, err, x.Uniform())
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	y, err := Open(path, FileID{Ino: 7}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	if !y.Uniform() {
		t.Fatal("flag not in the file")
	}
	if i, err := y.Find(99*61440 + 999); err != nil || i != 99 {
		t.Fatalf("Find in the last block: %d %v", i, err)
	}
	// A short block in the middle: not uniform, and the flag is cleared.
	r, _ := y.At(50)
	r.Length = 100
	y.put(50, r)
	y.seal()
	if u, err := y.CheckUniform(); err != nil || u || y.Uniform() {
		t.Fatalf("CheckUniform with a short middle block: %v %v, flag %v", u, err, y.Uniform())
	}
}
