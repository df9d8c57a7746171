package gzindex

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gzfs/gzfs/internal/procstat"
)

// logs returns n bytes of web-server-like log lines.
func logs(r *rand.Rand, n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		fmt.Fprintf(&b, "10.%d.%d.%d - - [02/Dec/2026:10:%02d:%02d +0000] \"GET /api/v1/items/%d HTTP/1.1\" %d %d\n",
			r.IntN(256), r.IntN(256), r.IntN(256), r.IntN(60), r.IntN(60), r.IntN(100000), []int{200, 200, 304, 404, 500}[r.IntN(5)], r.IntN(50000))
	}
	return b.Bytes()[:n]
}

func gzipBytes(t testing.TB, data []byte, level int) []byte {
	var b bytes.Buffer
	w, err := gzip.NewWriterLevel(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return b.Bytes()
}

// gzFile writes gz to a file and returns it with its identity.
func gzFile(t testing.TB, dir, name string, gz []byte) (*os.File, Identity) {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, gz, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	id := Identity{Ino: 1, Birth: 2, Size: st.Size(), MTime: st.ModTime().UnixNano()}
	if len(gz) >= 8 {
		copy(id.Tail[:], gz[len(gz)-8:])
	}
	return f, id
}

// checkReads compares random reads (and the whole file) with model.
func checkReads(t *testing.T, x *Index, r io.ReaderAt, model []byte, rnd *rand.Rand) {
	t.Helper()
	if x.Size() != int64(len(model)) {
		t.Fatalf("index size %d, model %d", x.Size(), len(model))
	}
	for i := 0; i < 200; i++ {
		off := rnd.Int64N(int64(len(model)) + 10)
		p := make([]byte, 1+rnd.IntN(100000))
		n, err := x.ReadAt(r, p, off)
		want := model[min(off, int64(len(model))):min(off+int64(len(p)), int64(len(model)))]
		if n != len(want) || !bytes.Equal(p[:n], want) {
			t.Fatalf("read %d at %d: got %d bytes (%v), want %d", len(p), off, n, err, len(want))
		}
		if n < len(p) && !errors.Is(err, io.EOF) {
			t.Fatalf("short read at %d: %v, want io.EOF", off, err)
		}
		if n == len(p) && err != nil {
			t.Fatalf("full read at %d: %v", off, err)
		}
	}
}

func TestBuildAndRead(t *testing.T) {
	if !Supported {
		t.Skip("pure-Go build: no checkpoint indexes (make test runs the libdeflate build)")
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	data := logs(rnd, 3<<20)
	cases := map[string][]byte{
		"gzip-6":  gzipBytes(t, data, 6),
		"gzip-1":  gzipBytes(t, data, 1),
		"members": append(append(gzipBytes(t, data[:1<<20], 6), gzipBytes(t, data[1<<20:1<<20+5], 9)...), gzipBytes(t, data[1<<20+5:], 6)...),
		"stored":  gzipBytes(t, data[:300000], 0),
	}
	if pigz, err := exec.LookPath("pigz"); err == nil {
		cmd := exec.Command(pigz, "-6", "-c")
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		cases["pigz"] = out
	}
	for name, gz := range cases {
		t.Run(name, func(t *testing.T) {
			model := data
			if name == "stored" {
				model = data[:300000]
			}
			dir := t.TempDir()
			f, id := gzFile(t, dir, "f.gz", gz)
			x, err := Build(f, id, filepath.Join(dir, "f.ckp"), BuildOptions{Span: 128 << 10})
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			if x.Damaged() >= 0 {
				t.Fatalf("damaged at %d", x.Damaged())
			}
			if x.Len() < int64(len(model))/(128<<10)/2 {
				t.Fatalf("%d checkpoints for %d bytes", x.Len(), len(model))
			}
			checkReads(t, x, f, model, rnd)
			// Opened again from its file.
			y, err := Open(filepath.Join(dir, "f.ckp"), id)
			if err != nil {
				t.Fatal(err)
			}
			defer y.Close()
			checkReads(t, y, f, model, rnd)
			t.Logf("%s: %d bytes gzip, %d checkpoints, index %d bytes (%.2f%%)", name, len(gz), y.Len(), y.Bytes(), 100*float64(y.Bytes())/float64(len(gz)))
		})
	}
}

func TestStaleAndDamagedIndex(t *testing.T) {
	if !Supported {
		t.Skip("pure-Go build: no checkpoint indexes")
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	data := logs(rnd, 1<<20)
	dir := t.TempDir()
	f, id := gzFile(t, dir, "f.gz", gzipBytes(t, data, 6))
	path := filepath.Join(dir, "f.ckp")
	x, err := Build(f, id, path, BuildOptions{Span: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	x.Close()
	other := id
	other.Size++
	if _, err := Open(path, other); !errors.Is(err, ErrStale) {
		t.Fatalf("another file's index: %v", err)
	}
	img, _ := os.ReadFile(path)
	for _, at := range []int{3, 20, HeaderSize + 5, len(img) - 3, len(img) - RecordSize - 10} {
		bad := bytes.Clone(img)
		bad[at] ^= 0x40
		os.WriteFile(path, bad, 0o644)
		x, err := Open(path, id)
		if err == nil {
			// A flipped window byte is found when the window is used.
			for i := int64(0); i < x.Len() && err == nil; i++ {
				var p Point
				if p, err = x.At(i); err == nil {
					_, err = x.ReadAt(f, make([]byte, 10), p.Out)
				}
			}
			x.Close()
		}
		if !errors.Is(err, ErrDamaged) {
			t.Fatalf("byte %d flipped: %v, want ErrDamaged", at, err)
		}
	}
	os.WriteFile(path, img[:len(img)-1], 0o644)
	if _, err := Open(path, id); !errors.Is(err, ErrDamaged) {
		t.Fatalf("cut index: %v", err)
	}
}

// TestDamagedGzip: a truncated file and a corrupt stream read up to the
// damage; past it ErrCorrupt; a corrupt member whose CRC fails is
// unreadable as a whole; bytes after the last member are ignored.
func TestDamagedGzip(t *testing.T) {
	if !Supported {
		t.Skip("pure-Go build: no checkpoint indexes")
	}
	rnd := rand.New(rand.NewPCG(5, 6))
	data := logs(rnd, 2<<20)
	gz := gzipBytes(t, data, 6)
	dir := t.TempDir()
	build := func(name string, b []byte) (*Index, *os.File) {
		f, id := gzFile(t, dir, name, b)
		x, err := Build(f, id, filepath.Join(dir, name+".ckp"), BuildOptions{Span: 64 << 10})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { x.Close() })
		return x, f
	}
	// Truncated in the middle.
	x, f := build("cut.gz", gz[:len(gz)/2])
	if x.Damaged() < 0 || x.Size() == 0 || x.Size() >= int64(len(data)) {
		t.Fatalf("truncated: damaged %d, size %d", x.Damaged(), x.Size())
	}
	p := make([]byte, 4096)
	if n, err := x.ReadAt(f, p, x.Size()/2); err != nil || !bytes.Equal(p[:n], data[x.Size()/2:x.Size()/2+4096]) {
		t.Fatalf("read before the damage: %d, %v", n, err)
	}
	if _, err := x.ReadAt(f, p, x.Size()+10); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read past the damage: %v", err)
	}
	// Garbage after the member: ignored, as gzip does.
	x, f = build("garbage.gz", append(bytes.Clone(gz), []byte("this is not gzip")...))
	if x.Damaged() >= 0 || x.Size() != int64(len(data)) {
		t.Fatalf("trailing garbage: damaged %d, size %d", x.Damaged(), x.Size())
	}
	// A corrupt byte in the middle: never wrong bytes.
	bad := bytes.Clone(gz)
	bad[len(bad)/2] ^= 0x10
	x, f = build("flip.gz", bad)
	if x.Damaged() < 0 {
		t.Fatalf("a corrupt stream indexed as sound")
	}
	for off := int64(0); off < int64(len(data)); off += 100000 {
		n, err := x.ReadAt(f, p, off)
		if n > 0 && !bytes.Equal(p[:n], data[off:off+int64(n)]) {
			t.Fatalf("wrong bytes at %d", off)
		}
		if off >= x.Size() && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("read at %d past the damage: %v", off, err)
		}
	}
}

// FuzzOpen: any bytes as an index file give an error or an index whose
// reads do not panic.
func FuzzOpen(f *testing.F) {
	if Supported {
		rnd := rand.New(rand.NewPCG(7, 8))
		data := logs(rnd, 300000)
		dir := f.TempDir()
		gf, id := gzFile(f, dir, "f.gz", gzipBytes(f, data, 6))
		x, err := Build(gf, id, filepath.Join(dir, "f.ckp"), BuildOptions{Span: 32 << 10})
		if err != nil {
			f.Fatal(err)
		}
		x.Close()
		img, _ := os.ReadFile(filepath.Join(dir, "f.ckp"))
		f.Add(img)
	}
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, img []byte) {
		x, err := parse(img)
		if err != nil {
			return
		}
		for i := int64(0); i < x.Len(); i++ {
			if p, err := x.At(i); err == nil {
				x.windowOf(p)
			}
		}
		x.find(x.Size() / 2)
	})
}

// TestReader: a Reader placed at an offset reads on to the end in pieces
// of any size, across member boundaries.
func TestReader(t *testing.T) {
	if !Supported {
		t.Skip("pure-Go build: no checkpoint indexes")
	}
	rnd := rand.New(rand.NewPCG(13, 14))
	data := logs(rnd, 2<<20)
	gz := append(gzipBytes(t, data[:700000], 6), gzipBytes(t, data[700000:], 6)...)
	dir := t.TempDir()
	f, id := gzFile(t, dir, "f.gz", gz)
	x, err := Build(f, id, filepath.Join(dir, "f.ckp"), BuildOptions{Span: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	for _, off := range []int64{0, 1, 699999, 700000, 1 << 20, int64(len(data)) - 1, int64(len(data))} {
		rd, err := x.NewReader(f, off)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		buf := make([]byte, 1+rnd.IntN(50000))
		for {
			n, err := rd.Read(buf[:1+rnd.IntN(len(buf))])
			got.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("at %d: %v", off, err)
			}
		}
		rd.Close()
		if !bytes.Equal(got.Bytes(), data[off:]) {
			t.Fatalf("reader at %d: %d bytes, want %d", off, got.Len(), len(data)-int(off))
		}
	}
}

// slowReader delays every read, so that a build takes a while, and reads
// past holdAt only once hold is closed (nil: never waits).
type slowReader struct {
	r      io.ReaderAt
	holdAt int64
	hold   chan struct{}
}

func (s slowReader) ReadAt(p []byte, off int64) (int, error) {
	time.Sleep(2 * time.Millisecond)
	if s.hold != nil && off >= s.holdAt {
		<-s.hold
	}
	return s.r.ReadAt(p, off)
}

// TestLive: while an index is built, reads through the checkpoints found
// so far give the right bytes, up to the end of the gzip data.
func TestLive(t *testing.T) {
	if !Supported {
		t.Skip("pure-Go build: no checkpoint indexes")
	}
	rnd := rand.New(rand.NewPCG(15, 16))
	data := logs(rnd, 4<<20)
	gz := append(gzipBytes(t, data[:3<<20], 6), gzipBytes(t, data[3<<20:], 6)...)
	dir := t.TempDir()
	f, id := gzFile(t, dir, "f.gz", gz)
	var live Live
	if _, err := live.ReadAt(f, make([]byte, 10), 0); !errors.Is(err, ErrNotLive) {
		t.Fatalf("before the build: %v", err)
	}
	done := make(chan error, 1)
	// The build waits half-way until this goroutine made a few reads (a
	// loaded machine could otherwise let the build end first).
	hold := make(chan struct{})
	go func() {
		x, err := Build(slowReader{f, int64(len(gz) / 2), hold}, id, filepath.Join(dir, "f.ckp"), BuildOptions{Span: 64 << 10, Live: &live, readSize: 8 << 10})
		if err == nil {
			x.Close()
		}
		done <- err
	}()
	reads := 0
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if reads == 0 {
				t.Fatal("no read went through the live index")
			}
			return
		default:
		}
		covers := live.Covers()
		if covers < 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		off := rnd.Int64N(int64(len(data)))
		p := make([]byte, 5000)
		n, err := live.ReadAt(f, p, off)
		if errors.Is(err, ErrNotLive) {
			continue // the build just ended
		}
		want := data[off:min(off+5000, int64(len(data)))]
		if n != len(want) || !bytes.Equal(p[:n], want) || (n < len(p) && err != io.EOF) {
			t.Fatalf("live read at %d (covers %d): %d bytes, %v", off, covers, n, err)
		}
		if reads++; reads == 20 {
			close(hold)
		}
	}
}

// TestRandomReadsKeepIndexOutOfMemory: a read at every checkpoint of an
// opened index (each inflates the checkpoint's window from the map) leaves
// a few pages of the index resident, not every window read.
func TestRandomReadsKeepIndexOutOfMemory(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 8))
	data := make([]byte, 24<<20)
	for i := range data { // incompressible: every window is 32 KiB stored
		data[i] = byte(rnd.Uint32())
	}
	dir := t.TempDir()
	f, id := gzFile(t, dir, "f.gz", gzipBytes(t, data, 1))
	path := filepath.Join(dir, "f.ckp")
	b, err := Build(f, id, path, BuildOptions{Span: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	x, err := Open(path, id)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if x.Bytes() < 4<<20 {
		t.Fatalf("index of %d bytes: too small for the test", x.Bytes())
	}
	base := procstat.RssFile(t)
	p := make([]byte, 16)
	for i := int64(0); i < x.Len(); i++ {
		pt, err := x.At(i)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := x.ReadAt(f, p, pt.Out); err != nil || !bytes.Equal(p[:n], data[pt.Out:pt.Out+int64(n)]) {
			t.Fatalf("read at checkpoint %d: %v", i, err)
		}
	}
	grew := procstat.RssFile(t) - base
	if grew > 1<<20 {
		t.Errorf("reads at %d checkpoints left %d KiB of a %d KiB index resident", x.Len(), grew>>10, x.Bytes()>>10)
	}
	t.Logf("reads at %d checkpoints: %d KiB of a %d KiB index resident", x.Len(), grew>>10, x.Bytes()>>10)
}
