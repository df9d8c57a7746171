package blockfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// textish returns compressible bytes.
func textish(r *rand.Rand, n int) []byte {
	words := []string{"alpha ", "beta ", "gamma\n", "GET /x ", "200 ", "delta ", "0123456789 "}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// checkSame compares the whole file with the model.
func checkSame(t *testing.T, f *File, model []byte, step string) {
	t.Helper()
	if f.Size() != int64(len(model)) {
		t.Fatalf("%s: size %d, model %d", step, f.Size(), len(model))
	}
	got := make([]byte, len(model)+10)
	n, err := f.ReadAt(got, 0)
	if err != io.EOF && !(err == nil && n == len(got)) {
		t.Fatalf("%s: ReadAt: %v", step, err)
	}
	if n != len(model) || !bytes.Equal(got[:n], model) {
		for i := 0; i < min(n, len(model)); i++ {
			if got[i] != model[i] {
				t.Fatalf("%s: first difference at %d (n=%d, model %d)", step, i, n, len(model))
			}
		}
		t.Fatalf("%s: read %d bytes, model %d", step, n, len(model))
	}
	// ReadVec in pieces that start and end anywhere.
	var v Vec
	for off := 0; off < len(model); {
		c := min(1+(off*7919)%150000, len(model)-off)
		n, err := f.ReadVec(got[:c], int64(off), &v)
		if err != nil && err != io.EOF {
			t.Fatalf("%s: ReadVec at %d: %v", step, off, err)
		}
		var vb []byte
		for _, s := range v.Slices {
			vb = append(vb, s...)
		}
		v.Release()
		if n != c || !bytes.Equal(vb, model[off:off+c]) {
			t.Fatalf("%s: ReadVec of %d bytes at %d: %d bytes, differ", step, c, off, n)
		}
		off += c
	}
}

// gzipOK checks the backing file with gzip -t and zcat.
func gzipOK(t *testing.T, path string, model []byte) {
	t.Helper()
	if _, err := exec.LookPath("gzip"); err != nil {
		t.Fatalf("gzip is needed to check backing files (make test installs it): %v", err)
	}
	out, err := exec.Command("gzip", "-dc", path).Output()
	if err != nil {
		t.Fatalf("gzip -dc %s: %v", path, err)
	}
	if !bytes.Equal(out, model) {
		t.Fatalf("gzip -dc gives %d bytes, model %d", len(out), len(model))
	}
}

func testOpts(bs int) Options {
	return Options{BlockSize: bs, Level: 1, Cache: NewCache(1 << 20)}
}

func TestModelRandomOps(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 99))

			dir := t.TempDir()
			path := filepath.Join(dir, "m.gz")
			bs := MinBlockSize * (1 + r.IntN(3))
			f, err := Create(path, 0o644, testOpts(bs))
			if err != nil {
				t.Fatal(err)
			}
			var model []byte
			for step := 0; step < 300; step++ {
				var desc string
				switch op := r.IntN(100); {
				case op < 45: // write
					off := r.Int64N(int64(len(model)) + int64(bs))
					n := 1 + r.IntN(3*bs)
					var data []byte
					if r.IntN(4) == 0 {
						data = randomBytes(r, n)
					} else {
						data = textish(r, n)
					}
					if _, err := f.WriteAt(data, off); err != nil {
						t.Fatalf("step %d WriteAt(%d, %d): %v", step, off, n, err)
					}
					if end := int(off) + n; end > len(model) {
						model = append(model, make([]byte, end-len(model))...)
					}
					copy(model[off:], data)
					desc = fmt.Sprintf("write %d@%d", n, off)
				case op < 55: // append
					data := textish(r, 1+r.IntN(200))
					off, err := f.Append(data)
					if err != nil || off != int64(len(model)) {
						t.Fatalf("step %d Append: off %d, %v", step, off, err)
					}
					model = append(model, data...)
					desc = "append"
				case op < 65: // truncate
					size := r.Int64N(int64(len(model)) + int64(2*bs) + 1)
					switch r.IntN(4) {
					case 0: // to empty, often right after a growth
						size = 0
					case 1: // a growth by several blocks, never flushed before the next op
						size = int64(len(model)) + r.Int64N(int64(5*bs))
					}
					if err := f.Truncate(size); err != nil {
						t.Fatalf("step %d Truncate(%d): %v", step, size, err)
					}
					if int(size) <= len(model) {
						model = model[:size]
					} else {
						model = append(model, make([]byte, int(size)-len(model))...)
					}
					desc = fmt.Sprintf("truncate %d", size)
				case op < 75:
					if err := f.Flush(); err != nil {
						t.Fatalf("step %d Flush: %v", step, err)
					}
					desc = "flush"
					gzipOK(t, path, model)
				case op < 80: // reopen
					if err := f.Close(); err != nil {
						t.Fatalf("step %d Close: %v", step, err)
					}
					gzipOK(t, path, model)
					if f, err = Open(path, testOpts(bs)); err != nil {
						t.Fatalf("step %d reopen: %v", step, err)
					}
					desc = "reopen"
				default: // read a random range
					if len(model) == 0 {
						continue
					}
					off := r.IntN(len(model))
					n := 1 + r.IntN(2*bs)
					buf := make([]byte, n)
					got, err := f.ReadAt(buf, int64(off))
					want := min(n, len(model)-off)
					if got != want || (err != nil && err != io.EOF) || !bytes.Equal(buf[:got], model[off:off+want]) {
						t.Fatalf("step %d ReadAt(%d, %d) = %d, %v", step, off, n, got, err)
					}
					continue
				}
				if testing.Verbose() {
					t.Logf("step %d: %s size %d", step, desc, len(model))
				}
				checkSame(t, f, model, fmt.Sprintf("step %d (%s)", step, desc))
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			gzipOK(t, path, model)
			// The index is rebuilt from scratch and gives the same bytes.
			st, _ := os.Stat(path)
			_ = st
			store, _ := FindStore(path)
			os.RemoveAll(store.Dir())
			f, err = Open(path, testOpts(bs))
			if err != nil {
				t.Fatal(err)
			}
			checkSame(t, f, model, "after index rebuild")
			f.Close()
		})
	}
}

// TestGrowthMovesTail overwrites the first block of a big file with
// incompressible data: the members after it give up their padding, and past
// the move window the rest of the file moves as one run through the journal,
// in journal entries of at most maxExtent bytes (small here: many of them).
func TestGrowthMovesTail(t *testing.T) {
	for _, extent := range []int64{maxExtent, 48 << 10} {
		t.Run(fmt.Sprint(extent), func(t *testing.T) {
			defer func(e int64) { maxExtent = e }(maxExtent)
			maxExtent = extent
			growthMovesTail(t)
		})
	}
}

func growthMovesTail(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	defer func(w int64) { moveWindow = w }(moveWindow)
	moveWindow = 64 << 10
	path := filepath.Join(t.TempDir(), "g.gz")
	model := textish(r, 320*DefaultBlockSize+5)
	packFile(t, path, model, Options{Level: 1})
	f, err := Open(path, Options{Level: 1})
	if err != nil {
		t.Fatal(err)
	}
	before := f.StoredSize()
	for _, off := range []int64{100, 7 * DefaultBlockSize, 300 * DefaultBlockSize} {
		noise := randomBytes(r, DefaultBlockSize-200)
		copy(model[off:], noise)
		if _, err := f.WriteAt(noise, off); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		checkSame(t, f, model, fmt.Sprintf("after overwrite at %d", off))
	}
	if f.StoredSize() <= before {
		t.Fatalf("stored size %d did not grow from %d", f.StoredSize(), before)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	gzipOK(t, path, model)
	store, _ := FindStore(path)
	os.RemoveAll(store.Dir())
	f, err = Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkSame(t, f, model, "after index rebuild")
}

// TestDamagedBlocks damages a header and a body in the middle of a file:
// those blocks read as corrupt, naming themselves; every other block still
// reads; opening read-write cuts nothing.
func TestDamagedBlocks(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	path := filepath.Join(t.TempDir(), "d.gz")
	model := textish(r, 10*DefaultBlockSize)
	packFile(t, path, model, Options{})
	f, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	r3, _ := f.idx.At(3)
	r6, _ := f.idx.At(6)
	f.Close()
	raw, _ := os.ReadFile(path)
	raw[r3.Offset+16] ^= 0xff            // BSIZE of block 3
	raw[r6.Offset+int64(r6.Size)/2] ^= 1 // deflate data of block 6
	os.WriteFile(path, raw, 0o644)
	store, _ := FindStore(path)
	os.RemoveAll(store.Dir()) // force a rebuild from the damaged headers

	f, err = Open(path, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.StoredSize() != int64(len(raw)) || f.Size() != int64(len(model)) {
		t.Fatalf("sizes changed: stored %d (was %d), logical %d", f.StoredSize(), len(raw), f.Size())
	}
	buf := make([]byte, DefaultBlockSize)
	for k := int64(0); k < 10; k++ {
		_, err := f.ReadAt(buf, k*DefaultBlockSize)
		var be *BlockError
		switch {
		case k == 3 || k == 6:
			if !errors.As(err, &be) || be.Block != k || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("block %d: got %v, want a BlockError naming it", k, err)
			}
		case err != nil:
			t.Fatalf("block %d: %v", k, err)
		case !bytes.Equal(buf, model[k*DefaultBlockSize:(k+1)*DefaultBlockSize]):
			t.Fatalf("block %d: wrong bytes", k)
		}
	}
	bad, err := f.Check(nil, nil)
	if err != nil || bad != 2 {
		t.Fatalf("Check: %d bad, %v", bad, err)
	}
	// Overwriting a damaged block whole repairs it.
	if _, err := f.WriteAt(model[3*DefaultBlockSize:4*DefaultBlockSize], 3*DefaultBlockSize); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(buf, 3*DefaultBlockSize); err != nil || !bytes.Equal(buf, model[3*DefaultBlockSize:4*DefaultBlockSize]) {
		t.Fatalf("repaired block: %v", err)
	}
}
