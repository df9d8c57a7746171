package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// posixCase is one operation checked through the mount and on the backing
// tree. dir is a fresh directory (relative to the mount root) for the case.
type posixCase struct {
	name string
	run  func(t *testing.T, m *mountProc, dir string)
}

func TestPOSIX(t *testing.T) {
	m := newMount(t, "flush=1s")
	for _, c := range posixCases {
		t.Run(c.name, func(t *testing.T) {
			if err := os.Mkdir(m.path(c.name), 0o755); err != nil {
				t.Fatal(err)
			}
			c.run(t, m, c.name)
		})
	}
}

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func expectContent(t *testing.T, m *mountProc, p string, want []byte) {
	t.Helper()
	if got := mustRead(t, m.path(p)); !bytes.Equal(got, want) {
		t.Errorf("read %s: %d bytes, want %d (first difference at %d)", p, len(got), len(want), firstDiff(got, want))
	}
	st, err := os.Stat(m.path(p))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != int64(len(want)) {
		t.Errorf("stat %s: size %d, want %d", p, st.Size(), len(want))
	}
	checkBacking(t, m, p, want)
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+int(seed)) ^ byte(i>>9)
	}
	return b
}

func expectErrno(t *testing.T, err error, want syscall.Errno) {
	t.Helper()
	if errnoOf(err) != want {
		t.Errorf("got error %v, want %v", err, want)
	}
}

var posixCases = []posixCase{
	{"create_write_read", func(t *testing.T, m *mountProc, d string) {
		data := pattern(200_000, 1)
		mustWrite(t, m.path(d+"/f"), data)
		expectContent(t, m, d+"/f", data)
		if _, err := os.Stat(m.bpath(d + "/f")); !os.IsNotExist(err) {
			t.Errorf("backing has a file without .gz: %v", err)
		}
		var st, bst unix.Stat_t
		unix.Stat(m.path(d+"/f"), &st)
		unix.Stat(m.bpath(d+"/f.gz"), &bst)
		if st.Ino != bst.Ino {
			t.Errorf("st_ino %d, backing st_ino %d", st.Ino, bst.Ino)
		}
	}},
	{"o_excl", func(t *testing.T, m *mountProc, d string) {
		f, err := os.OpenFile(m.path(d+"/f"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		_, err = os.OpenFile(m.path(d+"/f"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		expectErrno(t, err, syscall.EEXIST)
		st, err := os.Stat(m.path(d + "/f"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, %v; want 0600", st.Mode(), err)
		}
		expectContent(t, m, d+"/f", nil)
	}},
	{"o_trunc", func(t *testing.T, m *mountProc, d string) {
		mustWrite(t, m.path(d+"/f"), pattern(100_000, 2))
		f, err := os.OpenFile(m.path(d+"/f"), os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("abc"))
		f.Close()
		expectContent(t, m, d+"/f", []byte("abc"))
	}},
	{"o_append", func(t *testing.T, m *mountProc, d string) {
		mustWrite(t, m.path(d+"/f"), []byte("one\n"))
		f, err := os.OpenFile(m.path(d+"/f"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("two\n"))
		unix.Pwrite(int(f.Fd()), []byte("three\n"), 0) // O_APPEND: the offset is ignored
		f.Close()
		expectContent(t, m, d+"/f", []byte("one\ntwo\nthree\n"))
		// fcntl F_SETFL clears and sets O_APPEND on an open file, for a
		// gzfs file and for a plain one (it was fixed at the open).
		os.WriteFile(m.bpath(d+"/p"), []byte("0123456789"), 0o644)
		mustWrite(t, m.path(d+"/g"), []byte("0123456789"))
		for _, name := range []string{"g", "p"} {
			fd, err := unix.Open(m.path(d+"/"+name), unix.O_WRONLY|unix.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
			unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_APPEND)
			unix.Write(fd, []byte("AB")) // at offset 0
			unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl)
			unix.Write(fd, []byte("YZ")) // at the end again
			unix.Close(fd)
			if got := mustRead(t, m.path(d+"/"+name)); string(got) != "AB23456789YZ" {
				t.Errorf("%s after writes with O_APPEND cleared, then set: %q, want AB23456789YZ", name, got)
			}
		}
	}},
	{"rdonly_wronly_rdwr", func(t *testing.T, m *mountProc, d string) {
		mustWrite(t, m.path(d+"/f"), []byte("hello"))
		r, _ := os.Open(m.path(d + "/f"))
		_, err := r.Write([]byte("x"))
		expectErrno(t, err, syscall.EBADF)
		r.Close()
		w, _ := os.OpenFile(m.path(d+"/f"), os.O_WRONLY, 0)
		_, err = w.Read(make([]byte, 1))
		expectErrno(t, err, syscall.EBADF)
		w.WriteAt([]byte("J"), 0)
		w.Close()
		rw, _ := os.OpenFile(m.path(d+"/f"), os.O_RDWR, 0)
		rw.WriteAt([]byte("Y"), 4)
		b := make([]byte, 5)
		rw.ReadAt(b, 0)
		rw.Close()
		if string(b) != "JellY" {
			t.Errorf("got %q", b)
		}
		expectContent(t, m, d+"/f", []byte("JellY"))
	}},
	{"random_offsets", func(t *testing.T, m *mountProc, d string) {
		f, err := os.Create(m.path(d + "/f"))
		if err != nil {
			t.Fatal(err)
		}
		var want []byte
		for i, off := range []int{2_900_000, 0, 1_000_000, 61_430, 122_879, 500, 2_950_000} {
			p := pattern(50_000+i*10_000, byte(i))
			if end := off + len(p); end > len(want) {
				want = append(want, make([]byte, end-len(want))...)
			}
			copy(want[off:], p)
			if _, err := f.WriteAt(p, int64(off)); err != nil {
				t.Fatal(err)
			}
		}
		got := make([]byte, 70_000)
		if _, err := f.ReadAt(got, 999_000); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want[999_000:1_069_000]) {
			t.Errorf("read back in the middle differs at %d", firstDiff(got, want[999_000:]))
		}
		f.Close()
		expectContent(t, m, d+"/f", want)
	}},
	{"truncate", func(t *testing.T, m *mountProc, d string) {
		data := pattern(300_000, 3)
		mustWrite(t, m.path(d+"/f"), data)
		if err := os.Truncate(m.path(d+"/f"), 100_001); err != nil {
			t.Fatal(err)
		}
		expectContent(t, m, d+"/f", data[:100_001])
		f, _ := os.OpenFile(m.path(d+"/f"), os.O_RDWR, 0)
		if err := f.Truncate(200_000); err != nil {
			t.Fatal(err)
		}
		f.Close()
		want := append(append([]byte{}, data[:100_001]...), make([]byte, 99_999)...)
		expectContent(t, m, d+"/f", want)
		os.Truncate(m.path(d+"/f"), 0)
		expectContent(t, m, d+"/f", nil)
	}},
	{"fsync_fdatasync", func(t *testing.T, m *mountProc, d string) {
		f, _ := os.Create(m.path(d + "/f"))
		data := pattern(150_000, 4)
		f.Write(data)
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		checkBacking(t, m, d+"/f", data) // still open: fsync put it there
		f.Write([]byte("more"))
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			t.Fatal(err)
		}
		checkBacking(t, m, d+"/f", append(data, "more"...))
		f.Close()
		dir, _ := os.Open(m.path(d))
		if err := dir.Sync(); err != nil {
			t.Errorf("fsync of a directory: %v", err)
		}
		dir.Close()
	}},
	{"rename", func(t *testing.T, m *mountProc, d string) {
		os.Mkdir(m.path(d+"/sub"), 0o755)
		mustWrite(t, m.path(d+"/a"), []byte("A"))
		mustWrite(t, m.path(d+"/b"), []byte("B"))
		if err := os.Rename(m.path(d+"/a"), m.path(d+"/b")); err != nil {
			t.Fatal(err)
		}
		expectContent(t, m, d+"/b", []byte("A"))
		if _, err := os.Stat(m.bpath(d + "/a.gz")); !os.IsNotExist(err) {
			t.Errorf("a.gz still there")
		}
		if err := os.Rename(m.path(d+"/b"), m.path(d+"/sub/c")); err != nil {
			t.Fatal(err)
		}
		expectContent(t, m, d+"/sub/c", []byte("A"))
		mustWrite(t, m.path(d+"/x"), []byte("X"))
		mustWrite(t, m.path(d+"/y"), []byte("Y"))
		err := unix.Renameat2(unix.AT_FDCWD, m.path(d+"/x"), unix.AT_FDCWD, m.path(d+"/y"), unix.RENAME_NOREPLACE)
		expectErrno(t, err, syscall.EEXIST)
		if err := unix.Renameat2(unix.AT_FDCWD, m.path(d+"/x"), unix.AT_FDCWD, m.path(d+"/y"), unix.RENAME_EXCHANGE); err != nil {
			t.Fatal(err)
		}
		expectContent(t, m, d+"/x", []byte("Y"))
		expectContent(t, m, d+"/y", []byte("X"))
		if err := unix.Renameat2(unix.AT_FDCWD, m.path(d+"/x"), unix.AT_FDCWD, m.path(d+"/z"), unix.RENAME_NOREPLACE); err != nil {
			t.Fatal(err)
		}
		expectContent(t, m, d+"/z", []byte("Y"))
		// A directory moves with its content.
		if err := os.Rename(m.path(d+"/sub"), m.path(d+"/sub2")); err != nil {
			t.Fatal(err)
		}
		expectContent(t, m, d+"/sub2/c", []byte("A"))
	}},
	{"rename_over_open_file", func(t *testing.T, m *mountProc, d string) {
		mustWrite(t, m.path(d+"/old"), []byte("old content"))
		f, err := os.Open(m.path(d + "/old"))
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, m.path(d+"/new"), []byte("new"))
		if err := os.Rename(m.path(d+"/new"), m.path(d+"/old")); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 100)
		n, _ := f.ReadAt(b, 0)
		if string(b[:n]) != "old content" {
			t.Errorf("replaced open file reads %q", b[:n])
		}
		f.Close()
		expectContent(t, m, d+"/old", []byte("new"))
	}},
	{"rename_mixed_forms", func(t *testing.T, m *mountProc, d string) {
		os.WriteFile(m.bpath(d+"/plain"), []byte("plain"), 0o644)
		mustWrite(t, m.path(d+"/gz"), []byte("gz"))
		if err := os.Rename(m.path(d+"/gz"), m.path(d+"/plain")); err != nil {
			t.Fatal(err)
		}
		expectContent(t, m, d+"/plain", []byte("gz"))
		if _, err := os.Stat(m.bpath(d + "/plain")); !os.IsNotExist(err) {
			t.Errorf("the replaced plain file is still in the backing tree: %v", err)
		}
		os.WriteFile(m.bpath(d+"/p2"), []byte("p2"), 0o644)
		time.Sleep(1100 * time.Millisecond) // negative entry timeout of the kernel
		if err := unix.Renameat2(unix.AT_FDCWD, m.path(d+"/plain"), unix.AT_FDCWD, m.path(d+"/p2"), unix.RENAME_EXCHANGE); err != nil {
			t.Fatal(err)
		}
		expectContent(t, m, d+"/p2", []byte("gz"))
		if got, _ := os.ReadFile(m.bpath(d + "/plain")); string(got) != "p2" {
			t.Errorf("exchanged plain file: %q", got)
		}
		if got := mustRead(t, m.path(d+"/plain")); string(got) != "p2" {
			t.Errorf("exchanged plain file through the mount: %q", got)
		}
		// A plain file cannot take a name ending in .gz in place (its
		// backing name would read as a gzfs file, its content changed):
		// EXDEV, and mv copies it instead.
		expectErrno(t, os.Rename(m.path(d+"/plain"), m.path(d+"/plain.gz")), syscall.EXDEV)
		expectErrno(t, os.Link(m.path(d+"/plain"), m.path(d+"/plain.gz")), syscall.EXDEV)
		expectErrno(t, unix.Renameat2(unix.AT_FDCWD, m.path(d+"/plain"), unix.AT_FDCWD, m.path(d+"/plain.gz"), unix.RENAME_NOREPLACE), syscall.EXDEV)
		if out, err := execCommand("mv", m.path(d+"/plain"), m.path(d+"/plain.gz")); err != nil {
			t.Fatalf("mv of a plain file to a .gz name: %v %s", err, out)
		}
		expectContent(t, m, d+"/plain.gz", []byte("p2"))
	}},
	{"sidecars_forgotten", func(t *testing.T, m *mountProc, d string) {
		count := func() int {
			ents, _ := os.ReadDir(m.bpath(".gzfs"))
			return len(ents)
		}
		for i := 0; i < 10; i++ {
			mustWrite(t, m.path(fmt.Sprintf("%s/f%d", d, i)), pattern(200_000, byte(i)))
			mustRead(t, m.path(fmt.Sprintf("%s/f%d", d, i)))
		}
		before := count()
		for i := 0; i < 10; i++ {
			os.Remove(m.path(fmt.Sprintf("%s/f%d", d, i)))
		}
		deadline := time.Now().Add(10 * time.Second)
		for count() > before-10 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // the last RELEASE is asynchronous
		}
		if n := count(); n > before-10 {
			t.Errorf(".gzfs holds %d entries after removing 10 files (had %d)", n, before)
		}
	}},
	{"unlink_open_file", func(t *testing.T, m *mountProc, d string) {
		f, err := os.OpenFile(m.path(d+"/f"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("before "))
		if err := os.Remove(m.path(d + "/f")); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(m.path(d + "/f")); !os.IsNotExist(err) {
			t.Errorf("stat after unlink: %v", err)
		}
		if _, err := os.Stat(m.bpath(d + "/f.gz")); !os.IsNotExist(err) {
			t.Errorf("backing after unlink: %v", err)
		}
		if _, err := f.Write([]byte("after")); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 100)
		n, _ := f.ReadAt(b, 0)
		if string(b[:n]) != "before after" {
			t.Errorf("unlinked file reads %q", b[:n])
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Nlink != 0 || st.Size != 12 {
			t.Errorf("fstat of unlinked file: nlink %d size %d err %v", st.Nlink, st.Size, err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}},
	{"hardlink", func(t *testing.T, m *mountProc, d string) {
		mustWrite(t, m.path(d+"/a"), []byte("shared"))
		if err := os.Link(m.path(d+"/a"), m.path(d+"/b")); err != nil {
			t.Fatal(err)
		}
		var sa, sb unix.Stat_t
		unix.Stat(m.path(d+"/a"), &sa)
		unix.Stat(m.path(d+"/b"), &sb)
		if sa.Ino != sb.Ino || sa.Nlink != 2 || sb.Nlink != 2 {
			t.Errorf("ino %d/%d nlink %d/%d", sa.Ino, sb.Ino, sa.Nlink, sb.Nlink)
		}
		fa, _ := os.OpenFile(m.path(d+"/a"), os.O_RDWR, 0)
		fb, _ := os.OpenFile(m.path(d+"/b"), os.O_RDWR, 0)
		fa.WriteAt([]byte("S"), 0)
		b := make([]byte, 6)
		fb.ReadAt(b, 0)
		if string(b) != "Shared" {
			t.Errorf("b reads %q after a write through a", b)
		}
		fb.WriteAt([]byte("D"), 5)
		fa.ReadAt(b, 0)
		if string(b) != "ShareD" {
			t.Errorf("a reads %q after a write through b", b)
		}
		fa.Close()
		fb.Close()
		expectContent(t, m, d+"/a", []byte("ShareD"))
		expectContent(t, m, d+"/b", []byte("ShareD"))
		os.Remove(m.path(d + "/a"))
		unix.Stat(m.path(d+"/b"), &sb)
		if sb.Nlink != 1 {
			t.Errorf("nlink after unlink %d", sb.Nlink)
		}
		expectContent(t, m, d+"/b", []byte("ShareD"))
	}},
	{"symlink", func(t *testing.T, m *mountProc, d string) {
		mustWrite(t, m.path(d+"/target"), []byte("via link"))
		if err := os.Symlink("target", m.path(d+"/l")); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.Readlink(m.path(d + "/l")); got != "target" {
			t.Errorf("readlink %q", got)
		}
		if got, _ := os.Readlink(m.bpath(d + "/l")); got != "target" {
			t.Errorf("backing readlink %q", got)
		}
		if got := mustRead(t, m.path(d+"/l")); string(got) != "via link" {
			t.Errorf("read through link %q", got)
		}
		os.Symlink("/etc/passwd", m.path(d+"/abs"))
		if st, err := os.Lstat(m.path(d + "/abs")); err != nil || st.Mode()&os.ModeSymlink == 0 {
			t.Errorf("lstat: %v %v", st, err)
		}
	}},
	{"mkdir_rmdir", func(t *testing.T, m *mountProc, d string) {
		if err := os.MkdirAll(m.path(d+"/a/b/c"), 0o750); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(m.bpath(d + "/a/b/c"))
		if err != nil || !st.IsDir() || st.Mode().Perm() != 0o750 {
			t.Errorf("backing dir: %v %v", st, err)
		}
		mustWrite(t, m.path(d+"/a/f"), nil)
		expectErrno(t, syscall.Rmdir(m.path(d+"/a")), syscall.ENOTEMPTY)
		expectErrno(t, os.Mkdir(m.path(d+"/a/f"), 0o755), syscall.EEXIST)
		if err := syscall.Rmdir(m.path(d + "/a/b/c")); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(m.bpath(d + "/a/b/c")); !os.IsNotExist(err) {
			t.Errorf("backing dir remains")
		}
	}},
	{"mknod_fifo", func(t *testing.T, m *mountProc, d string) {
		if err := unix.Mkfifo(m.path(d+"/p"), 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := os.Lstat(m.bpath(d + "/p"))
		if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
			t.Errorf("backing fifo: %v %v", st, err)
		}
	}},
	{"chmod_chown_utimens", func(t *testing.T, m *mountProc, d string) {
		p := m.path(d + "/f")
		mustWrite(t, p, []byte("x"))
		if err := os.Chmod(p, 0o640); err != nil {
			t.Fatal(err)
		}
		if st, _ := os.Stat(m.bpath(d + "/f.gz")); st.Mode().Perm() != 0o640 {
			t.Errorf("backing mode %v", st.Mode())
		}
		if os.Geteuid() == 0 {
			if err := os.Chown(p, 1234, 5678); err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			unix.Stat(m.bpath(d+"/f.gz"), &st)
			if st.Uid != 1234 || st.Gid != 5678 {
				t.Errorf("backing owner %d:%d", st.Uid, st.Gid)
			}
		}
		ts := []unix.Timespec{{Sec: 1_000_000_000, Nsec: 5}, {Sec: 1_100_000_000, Nsec: 7}}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, 0); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		unix.Stat(p, &st)
		if st.Mtim != ts[1] || st.Atim != ts[0] {
			t.Errorf("times %v %v", st.Atim, st.Mtim)
		}
		// UTIME_OMIT keeps atime, UTIME_NOW sets mtime to now.
		ts2 := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_NOW}}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts2, 0); err != nil {
			t.Fatal(err)
		}
		unix.Stat(p, &st)
		if st.Atim != ts[0] || time.Since(time.Unix(st.Mtim.Unix())) > time.Minute {
			t.Errorf("after OMIT/NOW: atime %v mtime %v", st.Atim, st.Mtim)
		}
		var bst unix.Stat_t
		unix.Stat(m.bpath(d+"/f.gz"), &bst)
		if bst.Mtim != st.Mtim {
			t.Errorf("backing mtime %v, mount %v", bst.Mtim, st.Mtim)
		}
		// Writing updates mtime.
		before := st.Mtim
		time.Sleep(10 * time.Millisecond)
		f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		f.Write([]byte("y"))
		f.Close()
		unix.Stat(p, &st)
		if st.Mtim == before {
			t.Errorf("mtime unchanged by a write")
		}
	}},
	{"statfs", func(t *testing.T, m *mountProc, d string) {
		var a, b unix.Statfs_t
		unix.Statfs(m.path(d), &a)
		unix.Statfs(m.backing, &b)
		if a.Blocks != b.Blocks || a.Bsize != b.Bsize {
			t.Errorf("statfs blocks %d/%d bsize %d/%d", a.Blocks, b.Blocks, a.Bsize, b.Bsize)
		}
	}},
	{"fallocate", func(t *testing.T, m *mountProc, d string) {
		f, _ := os.Create(m.path(d + "/f"))
		defer f.Close()
		err := unix.Fallocate(int(f.Fd()), 0, 0, 4096)
		if err != nil && err != unix.EOPNOTSUPP {
			t.Errorf("fallocate: %v, want success or EOPNOTSUPP", err)
		}
	}},
	{"seek_data_hole", func(t *testing.T, m *mountProc, d string) {
		mustWrite(t, m.path(d+"/f"), pattern(100_000, 5))
		f, _ := os.Open(m.path(d + "/f"))
		defer f.Close()
		if off, err := unix.Seek(int(f.Fd()), 10, unix.SEEK_DATA); err != nil || off != 10 {
			t.Errorf("SEEK_DATA: %d %v", off, err)
		}
		if off, err := unix.Seek(int(f.Fd()), 10, unix.SEEK_HOLE); err != nil || off != 100_000 {
			t.Errorf("SEEK_HOLE: %d %v", off, err)
		}
		if _, err := unix.Seek(int(f.Fd()), 100_000, unix.SEEK_DATA); err != unix.ENXIO {
			t.Errorf("SEEK_DATA at EOF: %v, want ENXIO", err)
		}
	}},
	{"sizes_and_blocks", func(t *testing.T, m *mountProc, d string) {
		mustWrite(t, m.path(d+"/zeros"), make([]byte, 4<<20))
		var st, bst unix.Stat_t
		unix.Stat(m.path(d+"/zeros"), &st)
		unix.Stat(m.bpath(d+"/zeros.gz"), &bst)
		if st.Size != 4<<20 {
			t.Errorf("st_size %d", st.Size)
		}
		if st.Blocks != bst.Blocks || st.Blocks*512 > 1<<20 {
			t.Errorf("st_blocks %d (backing %d): du must show the compressed size", st.Blocks, bst.Blocks)
		}
		buf := make([]byte, 32)
		n, err := unix.Getxattr(m.path(d+"/zeros"), "user.gzfs.stored_size", buf)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := strconv.ParseInt(string(buf[:n]), 10, 64); got != bst.Size {
			t.Errorf("user.gzfs.stored_size %q, backing size %d", buf[:n], bst.Size)
		}
		expectErrno(t, unix.Setxattr(m.path(d+"/zeros"), "user.gzfs.stored_size", []byte("1"), 0), syscall.EPERM)
	}},
	{"xattr", func(t *testing.T, m *mountProc, d string) {
		p := m.path(d + "/f")
		mustWrite(t, p, []byte("x"))
		if err := unix.Setxattr(p, "user.color", []byte("blue"), 0); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := unix.Getxattr(m.bpath(d+"/f.gz"), "user.color", buf)
		if err != nil || string(buf[:n]) != "blue" {
			t.Errorf("backing xattr %q %v", buf[:max(n, 0)], err)
		}
		n, _ = unix.Listxattr(p, buf)
		if string(buf[:n]) != "user.color\x00" {
			t.Errorf("listxattr %q", buf[:n])
		}
		if err := unix.Removexattr(p, "user.color"); err != nil {
			t.Fatal(err)
		}
		_, err = unix.Getxattr(p, "user.color", buf)
		expectErrno(t, err, syscall.ENODATA)
	}},
	{"reserved_name", func(t *testing.T, m *mountProc, d string) {
		expectErrno(t, os.Mkdir(m.path(d+"/.gzfs"), 0o755), syscall.EPERM)
		expectErrno(t, os.WriteFile(m.path(".gzfs/x"), nil, 0o644), syscall.ENOENT)
		ents, _ := os.ReadDir(m.dir)
		for _, e := range ents {
			if e.Name() == ".gzfs" {
				t.Errorf(".gzfs shows in the mount")
			}
		}
		if _, err := os.Stat(m.path(".gzfs")); !os.IsNotExist(err) {
			t.Errorf("stat .gzfs: %v", err)
		}
	}},
	{"plain_and_clash", func(t *testing.T, m *mountProc, d string) {
		os.WriteFile(m.bpath(d+"/notes.txt"), []byte("plain text"), 0o644)
		if got := mustRead(t, m.path(d+"/notes.txt")); string(got) != "plain text" {
			t.Errorf("plain file reads %q", got)
		}
		f, _ := os.OpenFile(m.path(d+"/notes.txt"), os.O_WRONLY|os.O_APPEND, 0)
		f.Write([]byte("!"))
		f.Close()
		if got, _ := os.ReadFile(m.bpath(d + "/notes.txt")); string(got) != "plain text!" {
			t.Errorf("plain backing %q", got)
		}
		// x next to x.gz: the plain one shows, nothing is lost.
		mustWrite(t, m.path(d+"/x"), []byte("compressed"))
		os.WriteFile(m.bpath(d+"/x"), []byte("plain"), 0o644)
		time.Sleep(1100 * time.Millisecond) // entry timeout
		if got := mustRead(t, m.path(d+"/x")); string(got) != "plain" {
			t.Errorf("clash shows %q, want the plain file", got)
		}
		ents, _ := os.ReadDir(m.path(d))
		n := 0
		for _, e := range ents {
			if e.Name() == "x" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("x listed %d times", n)
		}
		checkBacking(t, m, d+"/x", []byte("compressed"))
		// A user's "y" and "y.gz" (gzip -k does this) are backing "y.gz"
		// and "y.gz.gz": both are listed (readdir hid "y.gz", so rm -r,
		// tar and cp -r missed it) and a directory of them can be removed.
		sub := d + "/k"
		os.Mkdir(m.path(sub), 0o755)
		mustWrite(t, m.path(sub+"/y"), []byte("y"))
		mustWrite(t, m.path(sub+"/y.gz"), []byte("a user's y.gz"))
		var listed []string
		ents, _ = os.ReadDir(m.path(sub))
		for _, e := range ents {
			listed = append(listed, e.Name())
		}
		if strings.Join(listed, ",") != "y,y.gz" {
			t.Errorf("listed %q, want y and y.gz", listed)
		}
		if err := os.RemoveAll(m.path(sub)); err != nil {
			t.Errorf("remove a directory holding y and y.gz: %v", err)
		}
	}},
	{"foreign_gzip", func(t *testing.T, m *mountProc, d string) {
		data := pattern(300_000, 6)
		os.WriteFile(m.bpath(d+"/raw"), data, 0o644)
		if out, err := execCommand("gzip", "-9", m.bpath(d+"/raw")); err != nil {
			t.Fatalf("gzip: %v %s", err, out)
		}
		if got := mustRead(t, m.path(d+"/raw")); !bytes.Equal(got, data) {
			t.Errorf("foreign gzip reads %d bytes, want %d", len(got), len(data))
		}
		if st, _ := os.Stat(m.path(d + "/raw")); st == nil || st.Size() != int64(len(data)) {
			t.Errorf("foreign gzip size: %v", st)
		}
		_, err := os.OpenFile(m.path(d+"/raw"), os.O_WRONLY, 0)
		expectErrno(t, err, syscall.EROFS)
		expectErrno(t, os.Truncate(m.path(d+"/raw"), 0), syscall.EROFS) // was EIO
		// Named .gz but not gzip at all: shown as it is, read-only.
		junk := pattern(5000, 8)
		os.WriteFile(m.bpath(d+"/junk.gz"), junk, 0o644)
		if got := mustRead(t, m.path(d+"/junk")); !bytes.Equal(got, junk) {
			t.Errorf("non-gzip .gz file reads %d bytes, want its %d bytes", len(got), len(junk))
		}
		expectErrno(t, os.Truncate(m.path(d+"/junk"), 0), syscall.EROFS)
	}},
	{"root_inode", func(t *testing.T, m *mountProc, d string) {
		// The root's st_ino is the backing directory's, as the root's own
		// readdir entry "." and a subdirectory's ".." say (it was 0).
		var root, back, dotdot unix.Stat_t
		for p, st := range map[string]*unix.Stat_t{m.dir: &root, m.backing: &back, m.path(d) + "/..": &dotdot} {
			if err := unix.Stat(p, st); err != nil {
				t.Fatal(err)
			}
		}
		if root.Ino == 0 || root.Ino != back.Ino || dotdot.Ino != root.Ino {
			t.Errorf("root inode %d, backing directory %d, %s/.. %d", root.Ino, back.Ino, d, dotdot.Ino)
		}
	}},
	{"mmap", func(t *testing.T, m *mountProc, d string) {
		data := pattern(256<<10, 7)
		mustWrite(t, m.path(d+"/f"), data)
		f, err := os.OpenFile(m.path(d+"/f"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		mem, err := unix.Mmap(int(f.Fd()), 0, len(data), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mem, data) {
			t.Errorf("mmap read differs at %d", firstDiff(mem, data))
		}
		copy(mem[100_000:], "written through mmap")
		copy(data[100_000:], "written through mmap")
		if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
			t.Fatal(err)
		}
		unix.Munmap(mem)
		f.Close()
		expectContent(t, m, d+"/f", data)
	}},
	{"long_names_and_deep_paths", func(t *testing.T, m *mountProc, d string) {
		name := string(bytes.Repeat([]byte("n"), 252)) // + ".gz" = NAME_MAX
		mustWrite(t, m.path(d+"/"+name), []byte("long"))
		expectContent(t, m, d+"/"+name, []byte("long"))
		// A mount path close to PATH_MAX: the daemon walks the backing tree
		// relative to directory descriptors.
		p := d
		for len(m.path(p)) < 4096-220 {
			p = filepath.Join(p, string(bytes.Repeat([]byte("d"), 200)))
			if err := os.Mkdir(m.path(p), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		p = filepath.Join(p, string(bytes.Repeat([]byte("f"), 4096-2-len(m.path(p)))))
		data := []byte("deep")
		if err := os.WriteFile(m.path(p), data, 0o644); err != nil {
			t.Fatalf("create with a %d-byte path: %v", len(m.path(p)), err)
		}
		if got := mustRead(t, m.path(p)); !bytes.Equal(got, data) {
			t.Errorf("deep file reads %q", got)
		}
		if got := readBackingDeep(t, m.backing, p+".gz"); !bytes.Equal(got, data) {
			t.Errorf("deep backing file holds %q", got)
		}
	}},
}

// TestMtimeNeverGoesBack: a written file reports the time of the write as
// st_mtime while it is open; once closed the backing file's mtime is what
// stat shows, and the kernel stamps that with its coarse clock, up to a
// tick earlier. st_mtime must not move backwards at that hand-over.
func TestMtimeNeverGoesBack(t *testing.T) {
	m := newMount(t)
	for i := 0; i < 6; i++ {
		p := filepath.Join(m.dir, fmt.Sprintf("f%d", i))
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		var open unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &open); err != nil {
			t.Fatal(err)
		}
		f.Close()
		time.Sleep(1100 * time.Millisecond) // past the kernel's attribute timeout (1 s)
		var closed unix.Stat_t
		if err := unix.Stat(p, &closed); err != nil {
			t.Fatal(err)
		}
		if closed.Mtim.Nano() < open.Mtim.Nano() {
			t.Fatalf("file %d: st_mtime went back from %d to %d after close", i, open.Mtim.Nano(), closed.Mtim.Nano())
		}
	}
}
