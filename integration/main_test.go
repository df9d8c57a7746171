package integration

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	gzfsBin  string // the binary under test
	binDir   string
	raceOnce sync.Once
	raceBin  string
	raceErr  error
	// clusterDown takes the GlusterFS cluster down when the cluster tests
	// brought it up.
	clusterDown func()
)

func TestMain(m *testing.M) {
	if err := fuseUsable(); err != nil {
		if os.Getenv("CI") != "" {
			fmt.Fprintf(os.Stderr, "FAIL: integration tests need FUSE: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("skipping integration tests (CI unset): %v\n", err)
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "gzfs-it-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	gzfsBin = filepath.Join(dir, "gzfs")
	build := []string{"build", "-o", gzfsBin}
	if os.Getenv("GZFS_TEST_RACE") != "" { // every test against a -race daemon
		build = append(build, "-race")
	}
	if out, err := exec.Command("go", append(build, "github.com/gzfs/gzfs/cmd/gzfs")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building gzfs: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	if clusterDown != nil {
		clusterDown()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// fuseUsable reports why FUSE mounts cannot work here.
func fuseUsable() error {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	f.Close()
	if _, err := exec.LookPath("fusermount3"); err != nil {
		return err
	}
	return nil
}

// raceBinary builds gzfs with -race once (for the concurrency tests).
func raceBinary(t *testing.T) string {
	raceOnce.Do(func() {
		raceBin = filepath.Join(binDir, "gzfs-race")
		out, err := exec.Command("go", "build", "-race", "-o", raceBin, "github.com/gzfs/gzfs/cmd/gzfs").CombinedOutput()
		if err != nil {
			raceErr = fmt.Errorf("go build -race: %v\n%s", err, out)
		}
	})
	if raceErr != nil {
		t.Fatal(raceErr)
	}
	return raceBin
}

// requireRoot fails (CI) or skips a test that needs root.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test needs root")
	}
	t.Skip("needs root")
}

// mountProc is one gzfs daemon serving a mount, run in the foreground (-f)
// as a child process.
type mountProc struct {
	t       testing.TB
	bin     string
	backing string
	dir     string
	log     string
	opts    []string
	wrap    []string // a command that runs the daemon (such as prlimit ARGS --)
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// newMount makes a backing directory and mount point and mounts them.
func newMount(t testing.TB, opts ...string) *mountProc {
	t.Helper()
	root := t.TempDir()
	m := &mountProc{t: t, bin: gzfsBin, backing: filepath.Join(root, "backing"), dir: filepath.Join(root, "mnt"),
		log: filepath.Join(root, "gzfs.log"), opts: opts}
	for _, d := range []string{m.backing, m.dir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(m.cleanup) // first: a start that fails leaves nothing mounted
	m.start()
	return m
}

// newTmpfsMount mounts gzfs over a fresh tmpfs of the given size (such as
// "3m") as BACKING: a small filesystem that fills up.
func newTmpfsMount(t testing.TB, size string, opts ...string) *mountProc {
	t.Helper()
	requireRoot(t)
	root := t.TempDir()
	small := filepath.Join(root, "small")
	os.Mkdir(small, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", small).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", small).Run() })
	m := &mountProc{t: t, bin: gzfsBin, backing: small, dir: filepath.Join(root, "mnt"), log: filepath.Join(root, "log"), opts: opts}
	os.Mkdir(m.dir, 0o755)
	t.Cleanup(m.cleanup)
	m.start()
	return m
}

// start runs the daemon and waits until the mount answers.
func (m *mountProc) start() {
	m.t.Helper()
	starts := strings.Count(m.logText(), "msg=mounted")
	args := []string{"mount", "-f", "--log", m.log}
	if len(m.opts) > 0 {
		args = append(args, "-o", strings.Join(m.opts, ","))
	}
	args = append(args, m.backing, m.dir)
	m.cmd = exec.Command(m.bin, args...)
	if len(m.wrap) > 0 {
		m.cmd = exec.Command(m.wrap[0], append(append(m.wrap[1:], m.bin), args...)...)
	}
	stderr, err := os.OpenFile(m.log+".stderr", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		m.t.Fatal(err)
	}
	defer stderr.Close()
	m.cmd.Stderr = stderr
	if err := m.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.exited = make(chan struct{})
	go func() {
		m.waitErr = m.cmd.Wait()
		close(m.exited)
	}()
	// Ready when the daemon logs "mounted": it has finished its own
	// start-up requests on the mount (go-fuse's poll check). A daemon
	// killed during those would wait for itself forever.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if mounted(m.dir) && strings.Count(m.logText(), "msg=mounted") > starts {
			return
		}
		select {
		case <-m.exited:
			m.t.Fatalf("gzfs exited before mounting: %v\nlog:\n%s", m.waitErr, m.logText())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.cmd.Process.Kill() // the cleanup unmounts what it left
			<-m.exited
			m.cmd = nil
			exec.Command("fusermount3", "-u", "-z", m.dir).Run()
			m.t.Fatalf("mount did not come up\nlog:\n%s", m.logText())
		}
	}
}

// logText is the daemon's log file and its stderr (where the race
// detector and panics write).
func (m *mountProc) logText() string {
	b, _ := os.ReadFile(m.log)
	e, _ := os.ReadFile(m.log + ".stderr")
	return string(b) + string(e)
}

// path returns the mount path of a relative name.
func (m *mountProc) path(p string) string { return filepath.Join(m.dir, p) }

// bpath returns the backing path of a relative name.
func (m *mountProc) bpath(p string) string { return filepath.Join(m.backing, p) }

// unmount unmounts with fusermount3 -u and waits for the daemon to exit 0.
func (m *mountProc) unmount() {
	m.t.Helper()
	var out []byte
	var err error
	for i := 0; i < 50; i++ {
		out, err = exec.Command("fusermount3", "-u", m.dir).CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte("busy")) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		m.t.Fatalf("fusermount3 -u: %v: %s", err, out)
	}
	m.wait()
}

// wait waits for the daemon to exit and checks its status.
func (m *mountProc) wait() {
	m.t.Helper()
	select {
	case <-m.exited:
	case <-time.After(30 * time.Second):
		m.cmd.Process.Kill()
		m.t.Fatalf("gzfs did not exit after unmount\nlog:\n%s", m.logText())
	}
	if m.waitErr != nil {
		m.t.Fatalf("gzfs exited with %v\nlog:\n%s", m.waitErr, m.logText())
	}
	m.cmd = nil
}

// kill SIGKILLs the daemon and cleans the dead mount (fusermount3 -u -z).
func (m *mountProc) kill() {
	m.t.Helper()
	m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.exited
	m.cmd = nil
	if out, err := exec.Command("fusermount3", "-u", "-z", m.dir).CombinedOutput(); err != nil {
		m.t.Fatalf("fusermount3 -u -z: %v: %s", err, out)
	}
}

// remount unmounts (if mounted) and mounts again.
func (m *mountProc) remount() {
	m.t.Helper()
	if m.cmd != nil {
		m.unmount()
	}
	m.start()
}

func (m *mountProc) cleanup() {
	if m.cmd != nil {
		if err := exec.Command("fusermount3", "-u", m.dir).Run(); err != nil {
			exec.Command("fusermount3", "-u", "-z", m.dir).Run()
		}
		select {
		case <-m.exited:
		case <-time.After(10 * time.Second):
			m.cmd.Process.Kill()
			<-m.exited
		}
	}
	// Also after a test unmounted or killed the daemon itself.
	for _, bad := range []string{"panic", "fatal error", "DATA RACE"} {
		if strings.Contains(m.logText(), bad) {
			m.t.Errorf("gzfs log shows %q:\n%s", bad, m.logText())
		}
	}
}

// mounted reports whether dir is a mount point.
func mounted(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == dir {
			return true
		}
	}
	return false
}

// gzipTest runs gzip -t on a backing file.
func gzipTest(t testing.TB, path string) {
	t.Helper()
	if out, err := exec.Command("gzip", "-t", path).CombinedOutput(); err != nil {
		t.Errorf("gzip -t %s: %v: %s", path, err, out)
	}
}

// zcat returns the decompressed content of a backing file (with gzip -dc).
func zcat(t testing.TB, path string) []byte {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("gzip", "-dc", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gzip -dc %s: %v: %s", path, err, stderr.String())
	}
	return out
}

// checkBacking checks that the backing file of mount name p is valid gzip
// holding want.
func checkBacking(t testing.TB, m *mountProc, p string, want []byte) {
	t.Helper()
	bp := m.bpath(backingGzName(p))
	gzipTest(t, bp)
	if got := zcat(t, bp); !bytes.Equal(got, want) {
		t.Errorf("zcat %s: %d bytes, want %d (first difference at %d)", bp, len(got), len(want), firstDiff(got, want))
	}
}

// backingGzName is the backing path of the gzfs file at mount path p, in
// the documented long-name form when the name plus ".gz" passes 255 bytes.
func backingGzName(p string) string {
	dir, name := filepath.Split(p)
	if len(name)+3 <= 255 {
		return p + ".gz"
	}
	sum := sha256.Sum256([]byte(name))
	return dir + "gzfs.longname." + base64.RawURLEncoding.EncodeToString(sum[:]) + ".gz"
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// errnoOf returns the errno inside err, or 0.
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// readBackingDeep decompresses a backing file whose absolute path may be
// longer than PATH_MAX, walking to it with openat; it checks CRCs and
// lengths like gzip -t.
func readBackingDeep(t testing.TB, root, rel string) []byte {
	t.Helper()
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(rel, "/")
	for _, c := range parts[:len(parts)-1] {
		next, err := unix.Openat(dir, c, unix.O_PATH|unix.O_DIRECTORY, 0)
		unix.Close(dir)
		if err != nil {
			t.Fatal(err)
		}
		dir = next
	}
	fd, err := unix.Openat(dir, parts[len(parts)-1], unix.O_RDONLY, 0)
	unix.Close(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip %s: %v", rel, err)
	}
	return b
}
