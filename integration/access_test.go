package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// asNobody runs a shell command as uid/gid 65534.
func asNobody(script string) (string, error) {
	out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script).CombinedOutput()
	return string(out), err
}

// TestPermissions: other users get nothing without allow_other; with it,
// modes apply (default_permissions).
func TestPermissions(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatal("setpriv is needed:", err)
	}
	m := newMount(t)
	// t.TempDir makes 0700 directories: let the other user walk to the mount.
	os.Chmod(filepath.Dir(m.dir), 0o755)
	os.Chmod(filepath.Dir(filepath.Dir(m.dir)), 0o755)
	mustWrite(t, m.path("public"), []byte("for all"))
	if out, err := asNobody("cat " + m.path("public")); err == nil {
		t.Errorf("another user read the mount without allow_other: %s", out)
	}
	m.unmount()

	m.opts = []string{"allow_other"}
	m.start()
	if out, err := asNobody("cat " + m.path("public")); err != nil || out != "for all" {
		t.Errorf("allow_other: reading a 0644 file as another user: %q %v", out, err)
	}
	mustWrite(t, m.path("secret"), []byte("root only"))
	os.Chmod(m.path("secret"), 0o600)
	if out, err := asNobody("cat " + m.path("secret")); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("a 0600 file read by another user: %q %v", out, err)
	}
	if out, err := asNobody("echo x > " + m.path("new")); err == nil {
		t.Errorf("another user created a file in a 0755 root-owned directory: %s", out)
	}
	os.Mkdir(m.path("shared"), 0o777)
	os.Chmod(m.path("shared"), 0o777)
	if out, err := asNobody("echo mine > " + m.path("shared/mine")); err != nil {
		t.Fatalf("create in a 0777 directory: %s %v", out, err)
	}
	st, err := os.Stat(m.bpath("shared/mine.gz"))
	if err != nil || st.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Errorf("new file's backing owner: %v %v", st, err)
	}
	// A hard link is not a new file: it keeps its owner (it used to be
	// given to whoever made the link).
	mustWrite(t, m.path("shared/roots"), []byte("root's"))
	os.Chmod(m.path("shared/roots"), 0o666)
	if out, err := asNobody("ln " + m.path("shared/roots") + " " + m.path("shared/link")); err != nil {
		t.Fatalf("link by another user: %s %v", out, err)
	}
	for _, name := range []string{"shared/roots", "shared/link"} {
		if st, err := os.Stat(m.path(name)); err != nil {
			t.Error(err)
		} else if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 0 || sys.Gid != 0 {
			t.Errorf("%s after another user linked it: owner %d:%d; want 0:0", name, sys.Uid, sys.Gid)
		}
	}
	// Set-ID bits asked for by another user stay, as on a local disk (the
	// daemon's chown to the caller cleared them); mkdir drops S_ISGID there
	// too.
	if out, err := asNobody("cd " + m.path("shared") + " && python3 -c 'import os; os.close(os.open(\"suid\", os.O_CREAT|os.O_WRONLY, 0o4755)); os.mknod(\"sgid\", 0o102750); os.mkdir(\"dir\", 0o2755)'"); err != nil {
		t.Fatalf("create with set-ID bits by another user: %s %v", out, err)
	}
	for name, want := range map[string]os.FileMode{"shared/suid": 0o755 | os.ModeSetuid, "shared/sgid": 0o750 | os.ModeSetgid, "shared/dir": 0o755 | os.ModeDir} {
		if st, err := os.Stat(m.path(name)); err != nil {
			t.Error(err)
		} else if st.Mode() != want {
			t.Errorf("%s created by another user: mode %v; want %v", name, st.Mode(), want)
		}
	}
	// The daemon's own user (root here) creating: owner and group as the
	// kernel gives them, also in a set-group-ID directory (no chown made).
	for _, err := range []error{os.Mkdir(m.path("sgid"), 0o775), os.Chown(m.path("sgid"), 0, 65534), os.Chmod(m.path("sgid"), 0o775|os.ModeSetgid)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(m.bpath("sgid")); err != nil || fi.Mode()&os.ModeSetgid == 0 {
		t.Fatalf("set-group-ID directory: %v %v", fi.Mode(), err)
	}
	mustWrite(t, m.path("sgid/f"), []byte("f"))
	mustWrite(t, m.path("plain-root"), []byte("r"))
	for name, want := range map[string][2]uint32{"sgid/f.gz": {0, 65534}, "plain-root.gz": {0, 0}} {
		st, err := os.Stat(m.bpath(name))
		if err != nil {
			t.Fatal(err)
		}
		if sys := st.Sys().(*syscall.Stat_t); sys.Uid != want[0] || sys.Gid != want[1] {
			t.Errorf("%s created by root: owner %d:%d, want %d:%d", name, sys.Uid, sys.Gid, want[0], want[1])
		}
	}
}

// TestOwnerOnlyPermissions: without allow_other the only caller is the
// user who mounted, so the kernel leaves the checks to the daemon's own
// access to the backing tree (no default_permissions): access(2) is
// answered from the backing entry, exec bits still hold, and a change to a
// directory costs no GETATTR of it. -o default_permissions brings the
// kernel's checks back.
func TestOwnerOnlyPermissions(t *testing.T) {
	requireRoot(t)
	m := newMount(t, "debug")
	mustWrite(t, m.path("data"), []byte("text"))
	mustWrite(t, m.path("tool"), []byte("#!/bin/sh\necho ran\n"))
	os.Chmod(m.path("tool"), 0o755)
	os.Mkdir(m.path("dir"), 0o700)
	for _, c := range []struct {
		name string
		mode uint32
		want error
	}{
		{"data", unix.X_OK, syscall.EACCES},
		{"data", unix.R_OK | unix.W_OK, nil},
		{"tool", unix.X_OK, nil},
		{"dir", unix.X_OK | unix.W_OK, nil},
		{"missing", unix.F_OK, syscall.ENOENT},
	} {
		if err := unix.Access(m.path(c.name), c.mode); !errors.Is(err, c.want) && err != c.want {
			t.Errorf("access(%s, %o) = %v, want %v", c.name, c.mode, err, c.want)
		}
	}
	if out, err := exec.Command(m.path("tool")).CombinedOutput(); err != nil || string(out) != "ran\n" {
		t.Errorf("running an executable file: %q %v", out, err)
	}
	if err := exec.Command(m.path("data")).Run(); !errors.Is(err, os.ErrPermission) {
		t.Errorf("running a file without x bits: %v, want EACCES", err)
	}
	countGetattr := func() int {
		before := strings.Count(m.logText(), ": GETATTR ")
		for i := 0; i < 5; i++ {
			if err := os.Mkdir(m.path("dir/sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(m.path("dir/sub")); err != nil {
				t.Fatal(err)
			}
		}
		return strings.Count(m.logText(), ": GETATTR ") - before
	}
	if n := countGetattr(); n != 0 {
		t.Errorf("5 mkdir+rmdir without allow_other sent %d GETATTR requests, want 0", n)
	}
	m.unmount()
	m.opts = []string{"debug", "default_permissions"}
	m.start()
	if n := countGetattr(); n < 5 {
		t.Errorf("with -o default_permissions 5 mkdir+rmdir sent %d GETATTR requests: the kernel does not check", n)
	}
}

// TestReadOnly: -o ro shows the files and refuses every change.
func TestReadOnly(t *testing.T) {
	m := newMount(t)
	mustWrite(t, m.path("f"), []byte("data"))
	os.Mkdir(m.path("d"), 0o755)
	m.unmount()
	m.opts = []string{"ro"}
	m.start()
	if got := mustRead(t, m.path("f")); string(got) != "data" {
		t.Errorf("ro read %q", got)
	}
	for what, err := range map[string]error{
		"write":  os.WriteFile(m.path("f"), []byte("x"), 0o644),
		"create": os.WriteFile(m.path("g"), []byte("x"), 0o644),
		"mkdir":  os.Mkdir(m.path("e"), 0o755),
		"unlink": os.Remove(m.path("f")),
		"chmod":  os.Chmod(m.path("f"), 0o600),
	} {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s on a ro mount: %v, want EROFS", what, err)
		}
	}
	if os.Geteuid() != 0 {
		return
	}
	// A read-only backing tree without a .gzfs store.
	m.unmount()
	os.RemoveAll(m.bpath(".gzfs"))
	robind := filepath.Join(filepath.Dir(m.backing), "robind")
	os.Mkdir(robind, 0o755)
	if out, err := exec.Command("mount", "--bind", "-o", "ro", m.backing, robind).CombinedOutput(); err != nil {
		t.Fatalf("ro bind mount: %v %s", err, out)
	}
	defer exec.Command("umount", robind).Run()
	m.backing = robind
	m.start()
	if got := mustRead(t, m.path("f")); string(got) != "data" {
		t.Errorf("ro backing without a store: %q", got)
	}
	m.unmount()
}

// TestSetIDCleared: a write, truncate or fallocate by a user without
// CAP_FSETID drops a file's set-user-ID bit, and its set-group-ID bit when
// the group may execute (FUSE's rule); root's writes keep them. gzfs does
// this itself (FUSE_HANDLE_KILLPRIV_V2), so the kernel does not ask for
// security.capability before every write: one GETXATTR for many writes.
func TestSetIDCleared(t *testing.T) {
	requireRoot(t)
	m := newMount(t, "allow_other", "debug")
	os.Chmod(filepath.Dir(m.dir), 0o755)
	os.Chmod(filepath.Dir(filepath.Dir(m.dir)), 0o755)
	mode := func(name string) os.FileMode {
		t.Helper()
		st, err := os.Stat(m.path(name))
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid)
	}
	for _, c := range []struct {
		name, script string
		mode, want   uint32
	}{
		{"w-suid-sgid", "echo more >> %s", 0o6777, 0o777},
		{"w-sgid-noexec", "echo more >> %s", 0o2767, 0o2767},
		{"w-suid-big", "head -c 300000 /dev/zero >> %s", 0o4777, 0o777},
		{"t-suid", "truncate -s 10 %s", 0o4777, 0o777},
		{"t-sgid", "truncate -s 0 %s", 0o2777, 0o777},
		{"f-suid", "fallocate -l 200000 %s", 0o4777, 0o777},
	} {
		mustWrite(t, m.path(c.name), []byte("root's data\n"))
		if err := os.Chmod(m.path(c.name), setIDMode(c.mode)); err != nil {
			t.Fatal(err)
		}
		if out, err := asNobody(fmt.Sprintf(c.script, m.path(c.name))); err != nil {
			t.Fatalf("%s: %s %v", c.name, out, err)
		}
		if got := mode(c.name); got != setIDMode(c.want) {
			t.Errorf("%s: mode %v after another user's change, want %v", c.name, got, setIDMode(c.want))
		}
		if st, err := os.Stat(m.bpath(c.name + ".gz")); err != nil || st.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModePerm) != setIDMode(c.want) {
			t.Errorf("%s: backing file %v %v", c.name, st.Mode(), err)
		}
	}
	// Root keeps the bits (CAP_FSETID).
	mustWrite(t, m.path("root"), []byte("x"))
	os.Chmod(m.path("root"), setIDMode(0o6755))
	f, err := os.OpenFile(m.path("root"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("more"))
	f.Close()
	if got := mode("root"); got != setIDMode(0o6755) {
		t.Errorf("root's write changed the mode to %v", got)
	}
	// Many writes to a file without set-ID bits (the kernel looks at
	// those of a file with them at every write): a security.capability
	// lookup at the first, and again only when the kernel has just
	// refreshed the file's attributes (one of ten, here), not one each.
	mustWrite(t, m.path("plain"), []byte("x"))
	os.Chmod(m.path("plain"), 0o666)
	before := strings.Count(m.logText(), ": GETXATTR ")
	if out, err := asNobody("for i in 1 2 3 4 5 6 7 8 9 10; do echo line >> " + m.path("plain") + "; done"); err != nil {
		t.Fatalf("%s %v", out, err)
	}
	if n := strings.Count(m.logText(), ": GETXATTR ") - before; n > 3 {
		t.Errorf("10 appends sent %d GETXATTR requests", n)
	}
}

// setIDMode turns a numeric mode with set-ID bits into an os.FileMode.
func setIDMode(m uint32) os.FileMode {
	mode := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= os.ModeSetgid
	}
	return mode
}

// TestUserMount: a user (not root) mounts gzfs without allow_other, so the
// daemon has the user's credentials and its own access to the backing tree
// is the permission check. The owner's modes hold as on a local disk, and a
// file whose owner took away its own read permission can still be listed
// and given it back (its size, unreadable, shows as the stored size).
func TestUserMount(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"setpriv", "fusermount3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed: %v", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "gzfs-usermount")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	back, mnt, bin := filepath.Join(dir, "back"), filepath.Join(dir, "mnt"), filepath.Join(dir, "gzfs")
	for _, d := range []string{back, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chown(d, 65534, 65534)
	}
	os.Chmod(dir, 0o755)
	logFile := filepath.Join(dir, "log")
	os.WriteFile(logFile, nil, 0o644)
	os.Chown(logFile, 65534, 65534)
	b, err := os.ReadFile(gzfsBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	// fusermount3 opens /dev/fuse with the user's credentials: open it to
	// others for the mount, as udev does on a desktop, then put it back.
	st, err := os.Stat("/dev/fuse")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod("/dev/fuse", 0o666); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		bin, "mount", "-o", "log="+logFile, back, mnt).CombinedOutput()
	os.Chmod("/dev/fuse", st.Mode().Perm())
	if err != nil {
		t.Fatalf("mount as a user: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := asNobody("fusermount3 -u " + mnt); err != nil {
			t.Errorf("unmount: %v %s", err, out)
		}
	})
	if _, err := os.Stat(filepath.Join(mnt, "x")); !errors.Is(err, os.ErrPermission) {
		t.Errorf("root in a user's mount without allow_other: %v, want EACCES", err)
	}
	script := `set -u
cd ` + mnt + `
echo hello > f || echo "FAIL create"
chmod 444 f || echo "FAIL chmod 444"
(echo more >> f) 2>/dev/null && echo "FAIL append to 0444"
python3 -c "import os,sys; sys.exit(os.access('f', os.W_OK))" || echo "FAIL access(W_OK) of 0444"
chmod 000 f || echo "FAIL chmod 000"
ls -l f >/dev/null || echo "FAIL ls of 000"
cat f 2>/dev/null && echo "FAIL read of 000"
chmod 600 f || echo "FAIL chmod 600"
[ "$(cat f)" = hello ] || echo "FAIL read back"
[ "$(stat -c %s f)" = 6 ] || echo "FAIL size $(stat -c %s f)"
mkdir d && chmod 555 d || echo "FAIL mkdir"
touch d/x 2>/dev/null && echo "FAIL create in 0555"
chmod 755 d && touch d/x || echo "FAIL create in 0755"
echo done`
	res, err := asNobody(script)
	if err != nil || strings.Contains(res, "FAIL") || !strings.HasSuffix(res, "done\n") {
		t.Errorf("as the user who mounted: %v\n%s", err, res)
	}
	if fi, err := os.Stat(filepath.Join(back, "d", "x.gz")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Errorf("backing file of the user's new file: %v", err)
	}
}
