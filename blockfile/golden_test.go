package blockfile

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var updateGolden = flag.Bool("update-golden", false, "write the golden fixtures of the current format version")

// goldenContent is the logical content of each fixture, generated the same
// way forever.
func goldenContent(name string) []byte {
	r := rand.New(rand.NewPCG(2026, 11))
	switch name {
	case "empty":
		return nil
	case "text3blocks":
		return textish(r, 3*DefaultBlockSize+1234)
	case "random":
		return randomBytes(r, DefaultBlockSize+77)
	case "rewritten":
		b := textish(r, 4*DefaultBlockSize)
		copy(b[DefaultBlockSize+100:], randomBytes(r, 3000)) // grown block 1, moved 2..3
		return b
	case "bgzip":
		return textish(r, 200000)
	}
	panic("unknown fixture " + name)
}

var goldenNames = []string{"empty", "text3blocks", "random", "rewritten", "bgzip"}

// writeGolden makes the fixtures of the current version (go test -run
// TestGolden -update-golden ./blockfile).
func writeGolden(t *testing.T, dir string) {
	for _, name := range goldenNames {
		path := filepath.Join(dir, name+".gz")
		data := goldenContent(name)
		switch name {
		case "bgzip":
			cmd := exec.Command("bgzip", "-c")
			cmd.Stdin = bytes.NewReader(data)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("bgzip: %v", err)
			}
			os.WriteFile(path, out, 0o644)
		case "rewritten":
			r := rand.New(rand.NewPCG(2026, 11))
			orig := textish(r, 4*DefaultBlockSize)
			packFile(t, path, orig, Options{})
			f, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt(data[DefaultBlockSize+100:DefaultBlockSize+3100], DefaultBlockSize+100)
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		default:
			packFile(t, path, data, Options{})
		}
	}
	os.RemoveAll(filepath.Join(dir, StoreDirName))
}

// TestGolden reads the fixtures of every format version: files written by
// any released gzfs stay readable.
func TestGolden(t *testing.T) {
	if *updateGolden {
		writeGolden(t, "../testdata/v1")
	}
	versions, _ := filepath.Glob("../testdata/v*")
	if len(versions) == 0 {
		t.Fatal("no golden fixtures in testdata/")
	}
	for _, vdir := range versions {
		for _, name := range goldenNames {
			t.Run(filepath.Base(vdir)+"/"+name, func(t *testing.T) {
				src, err := os.ReadFile(filepath.Join(vdir, name+".gz"))
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(t.TempDir(), name+".gz")
				os.WriteFile(path, src, 0o644)
				f, err := Open(path, Options{ReadOnly: true})
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				var got bytes.Buffer
				if _, err := f.WriteTo(&got); err != nil {
					t.Fatal(err)
				}
				want := goldenContent(name)
				if !bytes.Equal(got.Bytes(), want) {
					t.Fatalf("content differs: %d bytes, want %d", got.Len(), len(want))
				}
				if bad, err := f.Check(nil, nil); err != nil || bad != 0 {
					t.Fatalf("check: %d bad, %v", bad, err)
				}
			})
		}
	}
}
