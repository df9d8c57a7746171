package blockindex

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFullDisk grows an index on a full filesystem: ENOSPC, never SIGBUS.
func TestFullDisk(t *testing.T) {
	skip := t.Skipf
	if os.Getenv("CI") != "" {
		skip = t.Fatalf // CI runs as root: this must run there
	}
	if os.Geteuid() != 0 {
		skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		skip("cannot mount tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", dir).Run()
	x, err := Create(filepath.Join(dir, "x.idx"), FileID{Ino: 1}, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	var i int64
	for ; i < 1<<20; i++ {
		if err = x.Set(i, Record{Offset: i, Logical: i * 4096, Size: 1, Length: 4096}); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("after %d records: %v, want ENOSPC", i, err)
	}
}
