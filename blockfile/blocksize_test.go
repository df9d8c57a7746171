package blockfile

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/gzfs/gzfs/bgzf"
	"github.com/gzfs/gzfs/blockindex"
)

// TestLastBlockLongerThanBlockSize: another tool's BGZF file whose last
// member holds more than the block size the rebuild settled on (a BAM
// file: a short first block, then bgzip's 65,280-byte ones; or a first
// member of 5,000 bytes, which set the block size, and a longer last one)
// reads whole, also after a write at its end and a reopen; an index left
// with the old, too small block size is rebuilt. The end of the last block
// used to read as zeros, and a writer's close wrote them.
func TestLastBlockLongerThanBlockSize(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, sizes := range [][]int{{5000, 3000, 9000}, {3000, 65280, 65280, 65000}, {4096, 65536}} {
		var data []byte
		for _, n := range sizes {
			data = append(data, textish(rng, n)...)
		}
		path, store := otherToolsBGZF(t, data, sizes)
		opts := Options{Store: store, Cache: NewCache(1 << 20)}
		check := func(what string, want []byte) {
			t.Helper()
			f, err := Open(path, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got := make([]byte, f.Size())
			if n, err := f.ReadAt(got, 0); n != len(want) || err != nil && n != len(got) {
				t.Fatalf("%v, %s: read %d bytes of %d, %v", sizes, what, n, len(want), err)
			}
			if !bytes.Equal(got, want) {
				i := 0
				for i < min(len(got), len(want)) && got[i] == want[i] {
					i++
				}
				t.Fatalf("%v, %s: %d bytes, want %d; first difference at %d", sizes, what, len(got), len(want), i)
			}
		}
		check("first open", data)
		// A write at the end, then a reopen.
		f, err := Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		more := textish(rng, 100000)
		if _, err := f.Append(more); err != nil {
			t.Fatal(err)
		}
		id := f.fid
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		data = append(data, more...)
		check("after an append", data)
		// An index left by an older gzfs with the block size too small for
		// its last block is rebuilt, not used.
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		x, err := blockindex.Open(store.indexPath(id.Ino), id, false)
		if err != nil {
			t.Fatalf("%v: the sidecar: %v", sizes, err)
		}
		last, _ := x.At(x.Len() - 1)
		x.SetBlockSize(int(last.Length) - 1)
		x.Close()
		check("with an old index", data)
		if st2, _ := os.Stat(path); st2.Size() != st.Size() {
			t.Fatalf("%v: reading with an old index changed the backing file: %d -> %d bytes", sizes, st.Size(), st2.Size())
		}
	}
}

// TestCutIntoLongerBlock: a truncate into a block of another tool's BGZF
// that is longer than the file's block size (an index whose block size
// was taken from a shorter block) makes it the last block: the block size
// is raised to hold it, and the file reads whole up to the cut, also after
// a reopen.
func TestCutIntoLongerBlock(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	sizes := []int{3000, 65280, 65280, 20000}
	var data []byte
	for _, n := range sizes {
		data = append(data, textish(rng, n)...)
	}
	path, store := otherToolsBGZF(t, data, sizes)
	opts := Options{Store: store, Cache: NewCache(1 << 20)}
	f, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	id := f.fid
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// An index whose block size fits its last block (20,000 bytes) but not
	// the blocks before it, as the .gzi path or an older gzfs leaves.
	x, err := blockindex.Open(store.indexPath(id.Ino), id, false)
	if err != nil {
		t.Fatal(err)
	}
	x.SetBlockSize(30000)
	x.Close()
	cut := int64(3000 + 65280 + 64000)
	if f, err = Open(path, opts); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(cut); err != nil {
		t.Fatal(err)
	}
	want := data[:cut]
	for round := 0; round < 2; round++ {
		got := make([]byte, f.Size())
		if n, err := f.ReadAt(got, 0); int64(n) != cut || err != nil {
			t.Fatalf("round %d: read %d bytes of %d: %v", round, n, cut, err)
		}
		if !bytes.Equal(got, want) {
			i := 0
			for i < len(got) && got[i] == want[i] {
				i++
			}
			t.Fatalf("round %d: first difference at %d of %d", round, i, cut)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if f, err = Open(path, opts); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
}

// TestRebuildAfterWritesToOtherToolsFile: another tool's BGZF with blocks
// of uneven lengths, written to by gzfs (its members carry block numbers,
// which place blocks at k*BlockSize only in a uniform file), then indexed
// again from its member headers (the sidecar lost): the rebuild does not
// take the numbers for placement, and the file reads as it was written.
func TestRebuildAfterWritesToOtherToolsFile(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	for _, c := range []struct {
		sizes []int
		write func(f *File) error
	}{
		{[]int{5000, 9000, 3000}, func(f *File) error { return f.Truncate(7000) }},
		{[]int{5000, 9000}, func(f *File) error { _, err := f.WriteAt([]byte{'!'}, 6000); return err }},
	} {
		var data []byte
		for _, n := range c.sizes {
			data = append(data, textish(rng, n)...)
		}
		path, store := otherToolsBGZF(t, data, c.sizes)
		opts := Options{Store: store, Cache: NewCache(1 << 20)}
		f, err := Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.write(f); err != nil {
			t.Fatal(err)
		}
		if len(c.sizes) == 3 {
			data = data[:7000]
		} else {
			data[6000] = '!'
		}
		more := textish(rng, 30000)
		if _, err := f.Append(more); err != nil {
			t.Fatal(err)
		}
		data = append(data, more...)
		id := f.fid
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(store.indexPath(id.Ino)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if f, err = Open(path, opts); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, f.Size())
		n, err := f.ReadAt(got, 0)
		f.Close()
		if n != len(data) || err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%v: after a rebuild: %d bytes of %d (%v), equal %v", c.sizes, n, len(data), err, bytes.Equal(got[:n], data[:min(n, len(data))]))
		}
	}
}

// otherToolsBGZF writes data as another tool's BGZF file (MTIME 0 in every
// member), one member per size in sizes, then the EOF marker, in a new
// temporary directory; it returns the file's path and its sidecar store.
func otherToolsBGZF(t *testing.T, data []byte, sizes []int) (string, *Store) {
	t.Helper()
	enc, err := bgzf.NewEncoder(1)
	if err != nil {
		t.Fatal(err)
	}
	var file []byte
	for _, n := range sizes {
		m, err := enc.Encode(nil, data[:n], 0)
		if err != nil {
			t.Fatal(err)
		}
		file, data = append(file, m.Bytes...), data[n:]
	}
	path := filepath.Join(t.TempDir(), "other.gz")
	if err := os.WriteFile(path, append(file, bgzf.EOFMember...), 0o644); err != nil {
		t.Fatal(err)
	}
	store, err := FindStore(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, store
}
