package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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
