package integration

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestStatNoSideEffects: a stat of a file that is not open opens no engine:
// it works while another process (an offline gzfs command) holds the
// backing file's lock, and writes no sidecar. So does a read; a write open
// fails with EAGAIN until the lock is free.
func TestStatNoSideEffects(t *testing.T) {
	m := newMount(t)
	data := pattern(300_000, 5)
	mustWrite(t, m.path("f"), data)
	m.unmount()
	os.RemoveAll(m.bpath(".gzfs")) // no index: the size comes from the headers
	fd, err := unix.Open(m.bpath("f.gz"), unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil { // as gzfs fsck --repair does
		t.Fatal(err)
	}
	m.start()
	st, err := os.Stat(m.path("f"))
	if err != nil || st.Size() != int64(len(data)) {
		t.Fatalf("stat while another process holds the file: %v, %v", st, err)
	}
	ents, _ := os.ReadDir(m.bpath(".gzfs"))
	var ino unix.Stat_t
	unix.Stat(m.bpath("f.gz"), &ino)
	for _, e := range ents {
		if e.Name() == strconv.FormatUint(ino.Ino, 10)+".idx" {
			t.Errorf("stat wrote an index: %v", ents)
		}
	}
	// Reading it works while the lock is held (the engine reads without
	// it and writes nothing); writing fails with a clear errno.
	expectContent(t, m, "f", data)
	if ents, _ := os.ReadDir(m.bpath(".gzfs")); len(ents) > 0 {
		for _, e := range ents {
			if e.Name() == strconv.FormatUint(ino.Ino, 10)+".idx" {
				t.Errorf("a read without the lock wrote an index: %v", ents)
			}
		}
	}
	_, err = os.OpenFile(m.path("f"), os.O_WRONLY, 0)
	expectErrno(t, err, unix.EAGAIN)
	unix.Flock(fd, unix.LOCK_UN)
	f, err := os.OpenFile(m.path("f"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("write open once the lock is free: %v", err)
	}
	f.Write([]byte("more"))
	f.Close()
	expectContent(t, m, "f", append(data, "more"...))
}

// TestReadOnlyCloseNoFlush: closing a file opened read-only costs no FLUSH
// request (its open says FOPEN_NOFLUSH: there is nothing to flush), while a
// writer's close still flushes (its errors reach close).
func TestReadOnlyCloseNoFlush(t *testing.T) {
	m := newMount(t, "debug")
	flushes := func() int { return strings.Count(m.logText(), ": FLUSH ") }
	data := pattern(100_000, 3)
	mustWrite(t, m.path("f"), data)
	afterWrite := flushes()
	if afterWrite == 0 {
		t.Fatalf("no FLUSH request logged for a writer's close:\n%s", m.logText())
	}
	for i := 0; i < 5; i++ {
		expectContent(t, m, "f", data)
	}
	if n := flushes(); n != afterWrite {
		t.Errorf("5 read-only opens and closes sent %d FLUSH requests, want 0", n-afterWrite)
	}
}

// TestFDLimit: idle engines (files kept open after their last close, for a
// cheap reopen) never cost a user an open. The daemon runs with a limit of
// 200 descriptors: writing and reading back 1500 files one after the
// other works, as does holding 40 of them open; past the limit an open
// fails with EMFILE or ENFILE, the log says why once, and the mount works
// again as soon as files are closed.
func TestFDLimit(t *testing.T) {
	m := newMount(t)
	m.unmount()
	m.wrap = []string{"prlimit", "--nofile=200:200", "--"}
	m.start()
	const n = 1500
	for i := 0; i < n; i++ {
		mustWrite(t, m.path("f"+strconv.Itoa(i)), []byte(strconv.Itoa(i)))
	}
	for i := 0; i < n; i++ {
		if got := string(mustRead(t, m.path("f"+strconv.Itoa(i)))); got != strconv.Itoa(i) {
			t.Fatalf("f%d: %q", i, got)
		}
	}
	if ents, err := os.ReadDir(m.path("")); err != nil || len(ents) != n {
		t.Fatalf("readdir: %d entries, %v", len(ents), err)
	}
	var open []*os.File
	closeAll := func() {
		for _, f := range open {
			f.Close()
		}
		open = nil
	}
	defer closeAll()
	for i := 0; i < 40; i++ {
		f, err := os.OpenFile(m.path("f"+strconv.Itoa(i)), os.O_RDWR|os.O_APPEND, 0)
		if err != nil {
			t.Fatalf("holding %d files open: %v", i, err)
		}
		open = append(open, f)
	}
	// Past the limit: a clear errno, not EIO, and one log line.
	var err error
	for i := 40; i < n && err == nil; i++ {
		var f *os.File
		if f, err = os.OpenFile(m.path("f"+strconv.Itoa(i)), os.O_RDWR|os.O_APPEND, 0); err == nil {
			open = append(open, f)
		}
	}
	if e := errnoOf(err); e != unix.EMFILE && e != unix.ENFILE {
		t.Errorf("open past the daemon's limit: %v, want EMFILE or ENFILE", err)
	}
	closeAll()
	if c := strings.Count(m.logText(), "out of file descriptors"); c != 1 {
		t.Errorf("%d log lines about descriptors, want 1:\n%s", c, m.logText())
	}
	mustWrite(t, m.path("after"), []byte("x"))
	expectContent(t, m, "after", []byte("x"))

	// At the limit with an idle engine to give back: closing a plain file
	// works (its flush dup'ed the descriptor without relief: EMFILE from
	// close), and so does a create (its retry handed on the descriptor the
	// failed try had closed: EBADF, and the new name stayed behind). Each
	// step first fills the daemon's table: gzfs files, then plain files
	// (the first plain open that fails gives back the idle engine the
	// closed gzfs file left, so at least one plain file opens).
	for i := 0; i < 200; i++ {
		os.WriteFile(m.bpath("p"+strconv.Itoa(i)), []byte("plain"), 0o644)
	}
	for i := 0; ; i++ {
		f, err := os.Open(m.path("f" + strconv.Itoa(i)))
		if err != nil {
			break
		}
		open = append(open, f)
	}
	var plains []*os.File
	nextPlain := 0
	fillWithPlain := func() int {
		n := 0
		for ; nextPlain < 200; nextPlain++ {
			f, err := os.Open(m.path("p" + strconv.Itoa(nextPlain)))
			if err != nil {
				break
			}
			plains = append(plains, f)
			n++
		}
		return n
	}
	idleOne := func() { // a gzfs file: its engine goes idle, holding descriptors
		if len(open) == 0 {
			t.Fatal("no gzfs file left open to make idle")
		}
		open[len(open)-1].Close()
		open = open[:len(open)-1]
	}
	// The kernel sends a read-only file's RELEASE after close(2) returned:
	// until the daemon has handled it, there is no idle engine to give back.
	untilReleased := func(try func() bool) bool {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if try() {
				return true
			}
		}
		return false
	}
	idleOne()
	if !untilReleased(func() bool { return fillWithPlain() > 0 }) {
		t.Fatal("no plain file could be opened in 10 s after an engine went idle at the limit")
	}
	idleOne()
	if err := plains[len(plains)-1].Close(); err != nil {
		t.Errorf("close of a plain file at the descriptor limit: %v", err)
	}
	plains = plains[:len(plains)-1]
	// One descriptor free, no idle engine: a create that gets its file
	// made but no descriptor for the engine fails and takes the name back.
	fillWithPlain()
	plains[len(plains)-1].Close()
	plains = plains[:len(plains)-1]
	failed := 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		name := "one-free" + strconv.Itoa(failed)
		f, err := os.OpenFile(m.path(name), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
		if err == nil {
			f.Close()
			break
		}
		if e := errnoOf(err); e != unix.EMFILE && e != unix.ENFILE {
			t.Fatalf("create with one descriptor free: %v, want EMFILE or ENFILE", err)
		}
		if _, err := os.Lstat(m.bpath(name + ".gz")); err == nil {
			t.Fatalf("a create that failed at the limit left %s behind", name)
		}
		failed++
	}
	fillWithPlain()
	idleOne()
	tries := 0
	var createErr error
	created := untilReleased(func() bool {
		tries++
		f, err := os.OpenFile(m.path("new-at-limit"+strconv.Itoa(tries)), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
		if createErr = err; err == nil {
			f.Close()
		}
		e := errnoOf(err)
		return e != unix.EMFILE && e != unix.ENFILE
	})
	if !created || createErr != nil {
		t.Errorf("create at the descriptor limit with an idle engine to close (%d tries): %v", tries, createErr)
	}
	// A failed try leaves no name behind.
	for i := 1; i < tries; i++ {
		if _, err := os.Lstat(m.bpath("new-at-limit" + strconv.Itoa(i) + ".gz")); err == nil {
			t.Errorf("a create that failed at the limit left new-at-limit%d behind", i)
		}
	}
	for _, f := range plains {
		f.Close()
	}
	closeAll()
}
