package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestInstall: make install with DESTDIR and PREFIX puts the binary, the
// mount(8) helper and the example systemd unit in place, and
// systemd-analyze accepts the unit.
func TestInstall(t *testing.T) {
	needTools(t, "make", "systemd-analyze")
	dest := t.TempDir()
	cmd := exec.Command("make", "-C", "../..", "install", "DESTDIR="+dest, "PREFIX=/usr", "BIN="+filepath.Join(t.TempDir(), "gzfs"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	if st, err := os.Stat(filepath.Join(dest, "usr/bin/gzfs")); err != nil || st.Mode().Perm()&0o111 == 0 {
		t.Fatalf("usr/bin/gzfs: %v %v", st, err)
	}
	if target, err := os.Readlink(filepath.Join(dest, "sbin/mount.fuse.gzfs")); err != nil || target != "/usr/bin/gzfs" {
		t.Fatalf("sbin/mount.fuse.gzfs -> %q, %v", target, err)
	}
	unit := filepath.Join(dest, "usr/share/doc/gzfs/examples/mnt-logs.mount")
	if out, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput(); err != nil {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
}
