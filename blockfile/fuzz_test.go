package blockfile

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/gzfs/gzfs/bgzf"
	"github.com/gzfs/gzfs/blockindex"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// FuzzOpenBacking feeds arbitrary bytes as a backing file: opening and
// reading must never panic, and whatever reads without error must be what
// compress/gzip reads from the same bytes.
func FuzzOpenBacking(f *testing.F) {
	for _, name := range goldenNames {
		if b, err := os.ReadFile(filepath.Join("..", "testdata", "v1", name+".gz")); err == nil && len(b) < 40000 {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add([]byte("not gzip at all"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "f.gz")
		os.WriteFile(path, data, 0o644)
		file, err := Open(path, Options{ReadOnly: true, Logger: quiet})
		if err != nil {
			return
		}
		defer file.Close()
		var got bytes.Buffer
		if _, err := file.WriteTo(&got); err != nil {
			return
		}
		buf := make([]byte, 1000)
		for off := int64(0); off < file.Size(); off += 997 {
			n, err := file.ReadAt(buf, off)
			if err != nil && err != io.EOF {
				break
			}
			if !bytes.Equal(buf[:n], got.Bytes()[off:off+int64(n)]) {
				t.Fatalf("ReadAt(%d) disagrees with WriteTo", off)
			}
		}
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			if got.Len() == 0 {
				return
			}
			t.Fatalf("gzfs read %d bytes from what gzip rejects: %v", got.Len(), err)
		}
		want, err := io.ReadAll(zr)
		if err != nil {
			// gzip rejects trailing garbage that gzfs ignored as a torn tail:
			// gzfs must then have read a prefix of what gzip got.
			if !bytes.HasPrefix(want, got.Bytes()) {
				t.Fatalf("gzfs bytes are not a prefix of gzip's")
			}
			return
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("gzfs read %d bytes, gzip %d", got.Len(), len(want))
		}
	})
}

// FuzzJournal feeds arbitrary bytes as a journal: checking and replaying
// must never panic, and a journal that does not check out changes nothing.
func FuzzJournal(f *testing.F) {
	dir := f.TempDir()
	var seed bytes.Buffer
	j, err := openJournal(filepath.Join(dir, "seed.jnl"))
	if err != nil {
		f.Fatal(err)
	}
	if err := j.commit(blockindex.FileID{Ino: 7, Birth: 9}, 100, []extent{{off: 3, data: []byte("hello")}, {off: 50, data: []byte("world")}}, nil); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "seed.jnl"))
	if err != nil || len(b) == 0 {
		f.Fatalf("seed journal: %d bytes, %v", len(b), err)
	}
	seed.Write(b)
	j.close()
	f.Add(seed.Bytes())
	f.Add(seed.Bytes()[:20])
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		jpath := filepath.Join(dir, "j.jnl")
		os.WriteFile(jpath, data, 0o644)
		backing := filepath.Join(dir, "b")
		orig := bytes.Repeat([]byte{'x'}, 64)
		os.WriteFile(backing, orig, 0o644)
		j, err := openJournal(jpath)
		if err != nil {
			t.Fatal(err)
		}
		defer j.close()
		b, ok, _, err := j.check(blockindex.FileID{Ino: 7, Birth: 9})
		if err != nil || !ok {
			return
		}
		if b.finalSize > 1<<20 || b.count > 1000 {
			return // a valid journal asking for a big file: fine, skip the work
		}
		fd, err := os.OpenFile(backing, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fd.Close()
		j.apply(fd, b) // errors are fine; panics are not
	})
}

// FuzzGZI feeds arbitrary bytes as the htslib .gzi beside a BGZF file of
// uneven blocks that has no seek index yet: the open must never panic, and
// reading the file to its end gives all of its bytes and no error. A .gzi
// that does not fit is ignored (the member headers are walked); one whose
// offsets pass the open's checks but misplace a block is caught at the
// first read of that block, which walks the headers and reads again (the
// size it gave until then may be wrong).
func FuzzGZI(f *testing.F) {
	rng := rand.New(rand.NewPCG(41, 42))
	sizes := []int{5000, 3000, 9000, 4000}
	var data []byte
	for _, n := range sizes {
		data = append(data, textish(rng, n)...)
	}
	enc, err := bgzf.NewEncoder(1)
	if err != nil {
		f.Fatal(err)
	}
	var backing []byte
	var gzi []byte
	var c, u uint64
	for i, n := range sizes {
		m, err := enc.Encode(nil, data[int(u):int(u)+n], 0)
		if err != nil {
			f.Fatal(err)
		}
		backing = append(backing, m.Bytes...)
		c, u = c+uint64(len(m.Bytes)), u+uint64(n)
		if i < len(sizes)-1 {
			gzi = binary.LittleEndian.AppendUint64(gzi, c)
			gzi = binary.LittleEndian.AppendUint64(gzi, u)
		}
	}
	backing = append(backing, bgzf.EOFMember...)
	good := binary.LittleEndian.AppendUint64(nil, uint64(len(sizes)-1))
	good = append(good, gzi...)
	f.Add(good)
	f.Add(good[:20])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, g []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "f.gz")
		os.WriteFile(path, backing, 0o644)
		os.WriteFile(path+".gzi", g, 0o644)
		file, err := Open(path, Options{ReadOnly: true, Logger: quiet})
		if err != nil {
			return
		}
		defer file.Close()
		buf := make([]byte, 1500)
		for off := int64(0); off < file.Size() || off < int64(len(data)); {
			n, err := file.ReadAt(buf, off)
			if err != nil && err != io.EOF {
				t.Fatalf("ReadAt(%d): %v", off, err)
			}
			if off+int64(n) > int64(len(data)) || !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
				t.Fatalf("ReadAt(%d): wrong bytes", off)
			}
			if n == 0 {
				t.Fatalf("ReadAt(%d): nothing, at size %d of %d", off, file.Size(), len(data))
			}
			off += int64(n)
		}
		if file.Size() != int64(len(data)) {
			t.Fatalf("size %d after reading it all, the file holds %d", file.Size(), len(data))
		}
	})
}
