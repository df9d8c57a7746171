package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDefaultLogFile: a background daemon on a machine without syslog
// logs to /var/log/gzfs/MNT.log (as root) instead of dropping its logs.
func TestDefaultLogFile(t *testing.T) {
	requireRoot(t)
	if _, err := os.Stat("/dev/log"); err == nil {
		t.Log("this machine has syslog (/dev/log): the daemon logs there; checking the file name only")
	}
	root := t.TempDir()
	back, mnt := filepath.Join(root, "back"), filepath.Join(root, "mnt")
	os.Mkdir(back, 0o755)
	os.Mkdir(mnt, 0o755)
	logFile := filepath.Join("/var/log/gzfs", strings.ReplaceAll(strings.Trim(mnt, "/"), "/", "-")+".log")
	os.Remove(logFile)
	t.Cleanup(func() { os.Remove(logFile) })
	if out, err := exec.Command(gzfsBin, "mount", back, mnt).CombinedOutput(); err != nil {
		t.Fatalf("gzfs mount: %v %s", err, out)
	}
	defer exec.Command("fusermount3", "-u", mnt).Run()
	if err := os.WriteFile(filepath.Join(mnt, "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("fusermount3", "-u", mnt).CombinedOutput(); err != nil {
		t.Fatalf("unmount: %v %s", err, out)
	}
	if _, err := os.Stat("/dev/log"); err == nil {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(logFile)
		if strings.Contains(string(b), "msg=unmounted") {
			if !strings.Contains(string(b), "msg=mounted") {
				t.Fatalf("log file %s lacks the mount line:\n%s", logFile, b)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log in %s without syslog:\n%s", logFile, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
