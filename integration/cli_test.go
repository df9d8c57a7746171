package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runGzfs runs the binary and returns its exit code, stdout and stderr.
func runGzfs(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(gzfsBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// expectMountError checks a failed mount: non-zero exit, one line on
// stderr containing want, nothing mounted.
func expectMountError(t *testing.T, mnt, want string, args ...string) {
	t.Helper()
	code, _, stderr := runGzfs(t, args...)
	if code == 0 {
		t.Fatalf("gzfs %v succeeded, want an error", args)
	}
	if strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, want) {
		t.Errorf("gzfs %v: stderr %q, want one line containing %q", args, stderr, want)
	}
	if mounted(mnt) {
		exec.Command("fusermount3", "-u", mnt).Run()
		t.Errorf("gzfs %v left a mount", args)
	}
}

func TestMountErrors(t *testing.T) {
	root := t.TempDir()
	b, mnt := filepath.Join(root, "b"), filepath.Join(root, "m")
	os.Mkdir(b, 0o755)
	os.Mkdir(mnt, 0o755)
	file := filepath.Join(root, "file")
	os.WriteFile(file, nil, 0o644)

	expectMountError(t, mnt, "no such file", "mount", filepath.Join(root, "missing"), mnt)
	expectMountError(t, mnt, "not a directory", "mount", file, mnt)
	expectMountError(t, filepath.Join(root, "nomnt"), "no such file", "mount", b, filepath.Join(root, "nomnt"))
	expectMountError(t, mnt, "unknown mount option", "mount", "-o", "bogus=1", b, mnt)
	expectMountError(t, mnt, "level", "mount", "-o", "level=12", b, mnt)
	expectMountError(t, mnt, "cache", "mount", "-o", "cache=17592186044416", b, mnt) // MiB << 20 wrapped to 0
	expectMountError(t, mnt, "inside the backing", "mount", b, b)

	os.WriteFile(filepath.Join(mnt, "x"), nil, 0o644)
	expectMountError(t, mnt, "not empty", "mount", b, mnt)
	if code, _, stderr := runGzfs(t, "mount", "-o", "nonempty", b, mnt); code != 0 {
		t.Fatalf("-o nonempty: %s", stderr)
	}
	expectMountErrorMounted(t, mnt, "already mounted", "mount", "-o", "nonempty", b, mnt)
	umountWait(t, mnt)
	os.Remove(filepath.Join(mnt, "x"))

	// A dead mount left by a killed daemon.
	m := newMount(t)
	m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.exited
	m.cmd = nil
	expectMountError(t, "", "fusermount3 -u", "mount", m.backing, m.dir)
	// A mount point inside the dead mount: the hint names the dead mount.
	if code, _, stderr := runGzfs(t, "mount", m.backing, filepath.Join(m.dir, "sub")); code == 0 || !strings.Contains(stderr, "fusermount3 -u "+m.dir+"\n") {
		t.Errorf("mount inside a dead mount: exit %d, %q; want the hint to name %s", code, stderr, m.dir)
	}
	if out, err := exec.Command("fusermount3", "-u", "-z", m.dir).CombinedOutput(); err != nil {
		t.Fatalf("cleaning the dead mount: %v %s", err, out)
	}
	m.start()

	// A backing directory the daemon's user cannot read: refused at once
	// (the daemon opens it O_PATH, which needs no permission, and every ls
	// failed).
	if os.Geteuid() == 0 {
		os.Chmod(root, 0o755)
		os.Chmod(filepath.Dir(root), 0o755)
		closed := filepath.Join(root, "closed")
		os.Mkdir(closed, 0o700)
		out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", gzfsBin, "mount", closed, mnt).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "not readable") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
			t.Errorf("a backing directory the user cannot read: %v %q", err, out)
		}
		if mounted(mnt) {
			exec.Command("fusermount3", "-u", mnt).Run()
		}
	}

	// /dev/fuse unusable (/dev/null bound over it in a private mount
	// namespace).
	if os.Geteuid() == 0 {
		script := fmt.Sprintf("mount --bind /dev/null /dev/fuse && exec %s mount %s %s", gzfsBin, b, mnt)
		out, err := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "/dev/fuse") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
			t.Errorf("without a usable /dev/fuse: %v %q", err, out)
		}
	}
}

// expectMountErrorMounted is expectMountError for a mount point that is
// (and stays) mounted by another daemon.
func expectMountErrorMounted(t *testing.T, mnt, want string, args ...string) {
	t.Helper()
	code, _, stderr := runGzfs(t, args...)
	if code == 0 || !strings.Contains(stderr, want) {
		t.Errorf("gzfs %v: code %d stderr %q, want an error containing %q", args, code, stderr, want)
	}
}

var pidRe = regexp.MustCompile(`msg=mounted .* pid=(\d+)`)

// daemonPid reads the pid of a background daemon from its log.
func daemonPid(t *testing.T, log string) int {
	t.Helper()
	b, _ := os.ReadFile(log)
	mm := pidRe.FindSubmatch(b)
	if mm == nil {
		t.Fatalf("no pid in the log:\n%s", b)
	}
	pid, _ := strconv.Atoi(string(mm[1]))
	return pid
}

// waitExit waits until a process (not our child) is gone.
func waitExit(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			return
		}
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); bytes.Contains(b, []byte(") Z ")) {
			return // a zombie: it has exited
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon %d still running", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// umountWait unmounts with umount(8) (or fusermount3 -u when not root).
func umountWait(t *testing.T, mnt string) {
	t.Helper()
	cmd := exec.Command("umount", mnt)
	if os.Geteuid() != 0 {
		cmd = exec.Command("fusermount3", "-u", mnt)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v %s", cmd.Args, err, out)
	}
}

// TestBackgroundMount: without -f, gzfs returns once the mount answers; the
// daemon keeps serving; umount ends it after flushing.
func TestBackgroundMount(t *testing.T) {
	root := t.TempDir()
	b, mnt, log := filepath.Join(root, "b"), filepath.Join(root, "m"), filepath.Join(root, "log")
	os.Mkdir(b, 0o755)
	os.Mkdir(mnt, 0o755)
	if code, _, stderr := runGzfs(t, "mount", "--log", log, "-o", "level=1", b, mnt); code != 0 {
		t.Fatalf("gzfs mount: %d %s", code, stderr)
	}
	if !mounted(mnt) {
		t.Fatal("not mounted when gzfs mount returned")
	}
	pid := daemonPid(t, log)
	data := pattern(500_000, 9)
	if err := os.WriteFile(filepath.Join(mnt, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	umountWait(t, mnt)
	waitExit(t, pid)
	if mounted(mnt) {
		t.Fatal("still mounted")
	}
	gzipTest(t, filepath.Join(b, "f.gz"))
	if got := zcat(t, filepath.Join(b, "f.gz")); !bytes.Equal(got, data) {
		t.Errorf("zcat after umount: %d bytes", len(got))
	}
}

// TestSignalUnmount: SIGTERM flushes and unmounts; with a file still open
// the mount is detached, the file keeps working, and the daemon ends at
// its last close.
func TestSignalUnmount(t *testing.T) {
	m := newMount(t, "flush=0")
	os.WriteFile(m.path("closed"), []byte("closed file"), 0o644)
	f, err := os.OpenFile(m.path("open"), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("written before SIGTERM;"))
	m.cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(5 * time.Second)
	for mounted(m.dir) {
		if time.Now().After(deadline) {
			t.Fatal("still mounted 5s after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := zcat(t, m.bpath("open.gz")); string(got) != "written before SIGTERM;" {
		t.Errorf("SIGTERM did not flush the open file: %q", got)
	}
	if _, err := f.Write([]byte(" and after")); err != nil {
		t.Errorf("write to an open file after a lazy unmount: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	m.wait()
	checkBackingPath(t, m.bpath("open.gz"), []byte("written before SIGTERM; and after"))
	checkBackingPath(t, m.bpath("closed.gz"), []byte("closed file"))
}

func checkBackingPath(t *testing.T, p string, want []byte) {
	t.Helper()
	gzipTest(t, p)
	if got := zcat(t, p); !bytes.Equal(got, want) {
		t.Errorf("zcat %s = %q, want %q", p, got, want)
	}
}

// TestMountHelpers: mount -t fuse.gzfs, an fstab line, and the
// mount.fuse.gzfs helper form all go through the same entry point.
func TestMountHelpers(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	b, mnt := filepath.Join(root, "b"), filepath.Join(root, "m")
	os.Mkdir(b, 0o755)
	os.Mkdir(mnt, 0o755)
	env := append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"))
	check := func(how string, log string) {
		t.Helper()
		if !mounted(mnt) {
			t.Fatalf("%s: not mounted", how)
		}
		p := filepath.Join(mnt, how)
		if err := os.WriteFile(p, []byte(how), 0o644); err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		pid := daemonPid(t, log)
		umountWait(t, mnt)
		waitExit(t, pid)
		checkBackingPath(t, filepath.Join(b, how+".gz"), []byte(how))
	}

	// mount(8) runs /sbin/mount.fuse.gzfs BACKING MNT -o OPTIONS (it resets
	// PATH for helpers, so mount.fuse3 would only find a gzfs installed in
	// /usr/bin or the like). Install the helper symlink for the test.
	const sbinHelper = "/sbin/mount.fuse.gzfs"
	if _, err := os.Lstat(sbinHelper); err == nil {
		if dst, _ := os.Readlink(sbinHelper); dst != gzfsBin {
			t.Fatalf("%s exists (-> %q); remove it to run this test", sbinHelper, dst)
		}
	}
	if err := os.Symlink(gzfsBin, sbinHelper); err != nil {
		t.Fatalf("installing %s: %v", sbinHelper, err)
	}
	t.Cleanup(func() { os.Remove(sbinHelper) })
	log1 := filepath.Join(root, "log1")
	cmd := exec.Command("mount", "-t", "fuse.gzfs", b, mnt, "-o", "level=1,flush=2s,log="+log1)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mount -t fuse.gzfs: %v %s", err, out)
	}
	check("mount-t", log1)

	// The command line mount.fuse3 runs for type fuse.gzfs.
	log0 := filepath.Join(root, "log0")
	if out, err := exec.Command(gzfsBin, b, mnt, "-o", "rw,nosuid,nodev,level=1,log="+log0).CombinedOutput(); err != nil {
		t.Fatalf("gzfs BACKING MNT -o ...: %v %s", err, out)
	}
	check("mountfuse3-form", log0)

	// An fstab line (a private fstab file, mount -T).
	log2 := filepath.Join(root, "log2")
	fstab := filepath.Join(root, "fstab")
	line := fmt.Sprintf("%s %s fuse.gzfs noauto,level=9,cache=16,log=%s 0 0\n", b, mnt, log2)
	os.WriteFile(fstab, []byte(line), 0o644)
	cmd = exec.Command("mount", "-T", fstab, mnt)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mount via fstab: %v %s", err, out)
	}
	check("fstab", log2)

	// The helper's own flags: -n (no mtab), -f (fake: mount nothing).
	if out, err := exec.Command(sbinHelper, b, mnt, "-f", "-o", "rw").CombinedOutput(); err != nil || mounted(mnt) {
		t.Fatalf("mount.fuse.gzfs -f (fake): %v %s", err, out)
	}
	log3 := filepath.Join(root, "log3")
	if out, err := exec.Command(sbinHelper, b, mnt, "-n", "-o", "rw,log="+log3).CombinedOutput(); err != nil {
		t.Fatalf("mount.fuse.gzfs: %v %s", err, out)
	}
	check("helper", log3)
}
