package integration

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// treeDirs is the part of GOROOT/src copied into the mount: a few thousand
// files of real source, small and medium sized.
var treeDirs = []string{"bufio", "bytes", "strings", "sort", "container", "unicode", "encoding", "compress", "go", "regexp", "text"}

func TestTreeCopy(t *testing.T) {
	m := newMount(t)
	src := t.TempDir()
	goroot := runtime.GOROOT()
	for _, d := range treeDirs {
		if out, err := exec.Command("cp", "-a", filepath.Join(goroot, "src", d), src).CombinedOutput(); err != nil {
			t.Fatalf("cp from GOROOT: %v %s", err, out)
		}
	}
	if out, err := exec.Command("cp", "-a", src+"/.", m.path("tree")).CombinedOutput(); err != nil {
		t.Fatalf("cp -a into the mount: %v %s", err, out)
	}
	diff := func(when string) {
		t.Helper()
		if out, err := exec.Command("diff", "-r", src, m.path("tree")).CombinedOutput(); err != nil {
			t.Fatalf("diff -r %s: %v\n%s", when, err, firstLines(out, 20))
		}
	}
	diff("after copy")
	m.remount()
	diff("after remount")
	m.unmount()
	n := 0
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		want, _ := os.ReadFile(p)
		bp := m.bpath(filepath.Join("tree", rel) + ".gz")
		if got := zcat(t, bp); !bytes.Equal(got, want) {
			t.Errorf("zcat %s differs from the source", bp)
		}
		n++
		return nil
	})
	t.Logf("%d files checked with zcat", n)
}

func firstLines(b []byte, n int) string {
	lines := strings.SplitN(string(b), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// TestGit runs git on the mount: many small files, renames of lock files,
// mmap of pack and index files, fsync.
func TestGit(t *testing.T) {
	m := newMount(t)
	repo := m.path("repo")
	os.Mkdir(repo, 0o755)
	tar := exec.Command("sh", "-c", "tar -C "+filepath.Join(runtime.GOROOT(), "src")+" -cf - fmt os | tar -C "+repo+" -xf -")
	if out, err := tar.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.email=t@example.com", "-c", "user.name=t"}, args...)...)
		cmd.Dir = repo
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	git("init", "-q", ".")
	git("add", "-A")
	git("commit", "-qm", "import")
	git("gc", "-q")
	if out := git("fsck", "--full", "--strict"); strings.Contains(out, "error") {
		t.Errorf("git fsck: %s", out)
	}
	if out := git("status", "--porcelain"); out != "" {
		t.Errorf("git status after commit: %s", out)
	}
}
