package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestOpenBeneath(t *testing.T) {
	// The escapes below lead to a directory that exists ("x" beside the
	// root), so that only the refusal can make them fail.
	base := t.TempDir()
	root := filepath.Join(base, "root")
	os.MkdirAll(filepath.Join(base, "x"), 0o755)
	os.MkdirAll(filepath.Join(root, "a", "b"), 0o755)
	os.Symlink("/etc", filepath.Join(root, "link"))
	os.Symlink("a", filepath.Join(root, "rel"))
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rfd)

	fd, err := openBeneath(rfd, []string{"a", "b"}, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		t.Fatalf("a/b: %v", err)
	}
	unix.Close(fd)
	for _, comps := range [][]string{{"link"}, {"rel", "b"}, {"..", "x"}, {"a", "..", "..", "x"}} {
		if fd, err := openBeneath(rfd, comps, unix.O_PATH|unix.O_DIRECTORY); err == nil {
			unix.Close(fd)
			t.Errorf("%v: opened; symlinks and escapes must be refused", comps)
		}
	}
	// No components: the directory itself.
	fd, err = openBeneath(rfd, nil, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
}

func TestOpenBeneathLongPath(t *testing.T) {
	root := t.TempDir()
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rfd)
	name := strings.Repeat("d", 250)
	var comps []string
	dfd, _ := unix.Dup(rfd)
	for len(joinPath(comps)) < 6000 { // longer than PATH_MAX
		if err := unix.Mkdirat(dfd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(dfd, name, unix.O_PATH|unix.O_DIRECTORY, 0)
		unix.Close(dfd)
		if err != nil {
			t.Fatal(err)
		}
		dfd = next
		comps = append(comps, name)
	}
	unix.Close(dfd)
	fd, err := openBeneath(rfd, comps, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		t.Fatalf("%d-byte path: %v", len(joinPath(comps)), err)
	}
	unix.Close(fd)
}

func TestReadDirents(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := 0; i < 3000; i++ {
		n := fmt.Sprintf("file-%04d-%s", i, strings.Repeat("x", i%200))
		os.WriteFile(filepath.Join(dir, n), nil, 0o644)
		want = append(want, n)
	}
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	want = append(want, "sub", ".", "..")
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for pass := 0; pass < 2; pass++ { // a second read starts over
		ents, err := readDirents(fd)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range ents {
			got = append(got, e.name)
			if e.name == "sub" && dtMode(e.typ) != unix.S_IFDIR {
				t.Errorf("sub: type %d", e.typ)
			}
		}
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, "/") != strings.Join(want, "/") {
			t.Fatalf("pass %d: %d names, want %d", pass, len(got), len(want))
		}
	}
}
