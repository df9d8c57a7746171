package integration

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// maxFileSize is gzfs's documented maximum file size (blockfile.MaxFileSize).
const maxFileSize = 1 << 44

// TestTruncateSequences: the truncate probes exercisers start with. A
// growing ftruncate then ftruncate to 0 once gave EIO, logged as a corrupt
// block.
func TestTruncateSequences(t *testing.T) {
	m := newMount(t)
	seqs := [][]int64{
		{100000, 0},
		{100000, 0, 100000, 50},
		{1, 0},
		{61440, 0},
		{61441, 61439, 0},
		{5 << 20, 3, 0, 7 << 20},
	}
	for i, seq := range seqs {
		p := m.path("t" + strconv.Itoa(i))
		f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		var want []byte
		for _, size := range seq {
			if err := f.Truncate(size); err != nil {
				t.Fatalf("sequence %v: ftruncate(%d): %v", seq, size, err)
			}
			if int(size) <= len(want) {
				want = want[:size]
			} else {
				want = append(want, make([]byte, int(size)-len(want))...)
			}
			if st, err := f.Stat(); err != nil || st.Size() != size {
				t.Fatalf("sequence %v: size after ftruncate(%d): %v %v", seq, size, st.Size(), err)
			}
		}
		f.WriteAt([]byte("end"), int64(len(want)))
		want = append(want, "end"...)
		if err := f.Close(); err != nil {
			t.Fatalf("sequence %v: close: %v", seq, err)
		}
		expectContent(t, m, "t"+strconv.Itoa(i), want)
	}
	if log := m.logText(); strings.Contains(log, "corrupt") || strings.Contains(log, "level=ERROR") {
		t.Errorf("daemon log reports errors:\n%s", log)
	}
}

// TestFileSizeLimits: past the maximum file size truncate, write and
// copy_file_range fail with EFBIG at once and write nothing; a growth whose
// zero fill does not fit on the backing filesystem fails with ENOSPC and
// the file keeps its size and bytes; a failed growth is not logged as
// corrupt data.
func TestFileSizeLimits(t *testing.T) {
	m := newTmpfsMount(t, "16m")

	data := pattern(100_000, 3)
	mustWrite(t, m.path("f"), data)
	f, err := os.OpenFile(m.path("f"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var before unix.Statfs_t
	if err := unix.Statfs(m.backing, &before); err != nil {
		t.Fatal(err)
	}
	stored, _ := os.Stat(m.bpath("f.gz"))
	for _, size := range []int64{999999999999999, maxFileSize + 1, 1 << 62} {
		expectErrno(t, f.Truncate(size), syscall.EFBIG)
		expectErrno(t, os.Truncate(m.path("f"), size), syscall.EFBIG)
	}
	_, err = f.WriteAt([]byte("x"), maxFileSize)
	expectErrno(t, err, syscall.EFBIG)
	src, err := os.Open(m.path("f"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	soff, doff := int64(0), int64(maxFileSize)
	_, err = unix.CopyFileRange(int(src.Fd()), &soff, int(f.Fd()), &doff, 10, 0)
	expectErrno(t, err, syscall.EFBIG)
	// 10 GiB of holes need about 24 MB of zero blocks: more than the 16 MB there.
	expectErrno(t, f.Truncate(10<<30), syscall.ENOSPC)
	_, err = f.WriteAt([]byte("x"), 10<<30)
	expectErrno(t, err, syscall.ENOSPC)
	expectErrno(t, unix.Fallocate(int(f.Fd()), 0, 0, 10<<30), syscall.ENOSPC)
	// Refused at once: nothing was written first (the backing file and
	// the free space of the backing filesystem are as they were).
	var after unix.Statfs_t
	if err := unix.Statfs(m.backing, &after); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(m.bpath("f.gz")); err != nil || st.Size() != stored.Size() {
		t.Errorf("backing file %v (%v) after refused growths, was %d bytes", st, err, stored.Size())
	}
	if used := int64(before.Bfree-after.Bfree) * before.Bsize; used > 1<<20 {
		t.Errorf("the refused growths used %d bytes of the backing filesystem", used)
	}
	if st, _ := f.Stat(); st.Size() != int64(len(data)) {
		t.Errorf("size %d after refused growths, want %d", st.Size(), len(data))
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	expectContent(t, m, "f", data)
	if st, _ := os.Stat(m.bpath("f.gz")); st.Size() > 1<<20 {
		t.Errorf("backing file grew to %d bytes", st.Size())
	}
	// A growth that fits works.
	if err := os.Truncate(m.path("f"), 300<<20); err != nil {
		t.Fatalf("a growth that fits: %v", err)
	}
	if log := m.logText(); strings.Contains(log, "corrupt") {
		t.Errorf("a refused growth was logged as corrupt data:\n%s", log)
	}
}

// TestHugeHole grows a file by 1 TiB and closes it (about 2.4 GB of zero
// blocks and index) while another file is read: the fill is written in bulk
// and the other file keeps being served. The time it takes is measured by
// make bench; this checks that it works and reads right afterwards.
func TestHugeHole(t *testing.T) {
	m := newMount(t)
	mustWrite(t, m.path("other"), pattern(200_000, 9))
	f, err := os.OpenFile(m.path("hole"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	const size = 1 << 40
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tail"), size-4); err != nil {
		t.Fatal(err)
	}
	var reads atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if b, err := os.ReadFile(m.path("other")); err == nil && len(b) == 200_000 {
				reads.Add(1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	start := time.Now()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	close(stop)
	<-done
	t.Logf("1 TiB hole closed in %v; the other file was read %d times meanwhile", took, reads.Load())
	if took > time.Second && reads.Load() == 0 {
		t.Errorf("no read of another file was served during the %v close", took)
	}
	g, err := os.Open(m.path("hole"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	b := make([]byte, 8)
	if _, err := g.ReadAt(b, size-8); err != nil || string(b) != "\x00\x00\x00\x00tail" {
		t.Errorf("end of the hole: %q %v", b, err)
	}
	if _, err := g.ReadAt(b, size/3); err != nil || !bytes.Equal(b, make([]byte, 8)) {
		t.Errorf("middle of the hole: %q %v", b, err)
	}
	var bst unix.Stat_t
	unix.Stat(m.bpath("hole.gz"), &bst)
	if bst.Size > size/400 {
		t.Errorf("backing file %d bytes for a 1 TiB hole", bst.Size)
	}
	g.Close()
	os.Remove(m.path("hole"))
}

// TestLongNames: every name up to the backing NAME_MAX (255) works in
// every operation, readdir shows it whole, names past it are ENAMETOOLONG,
// and the data of a long-named file stays readable without gzfs.
func TestLongNames(t *testing.T) {
	m := newMount(t)
	var sfs unix.Statfs_t
	if err := unix.Statfs(m.dir, &sfs); err != nil || sfs.Namelen != 255 {
		t.Fatalf("statfs namelen %d, %v", sfs.Namelen, err)
	}
	if out, err := exec.Command("getconf", "NAME_MAX", m.dir).Output(); err != nil || strings.TrimSpace(string(out)) != "255" {
		t.Errorf("getconf NAME_MAX: %q %v", out, err)
	}
	for _, n := range []int{252, 253, 254, 255} {
		name := strings.Repeat(string(rune('a'+n-252)), n-4) + ".log"
		p := m.path(name)
		data := pattern(70_000+n, byte(n))
		mustWrite(t, p, data) // create, write, close
		expectContent(t, m, name, data)
		if err := os.Chmod(p, 0o600); err != nil {
			t.Errorf("%d: chmod: %v", n, err)
		}
		if err := os.Chown(p, 1, 1); err != nil {
			t.Errorf("%d: chown: %v", n, err)
		}
		if err := os.Truncate(p, 70_000); err != nil {
			t.Errorf("%d: truncate: %v", n, err)
		}
		data = data[:70_000]
		if st, err := os.Stat(p); err != nil || st.Size() != 70_000 || st.Mode().Perm() != 0o600 {
			t.Errorf("%d: stat: %v %v", n, st, err)
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatalf("%d: open: %v", n, err)
		}
		f.Write([]byte("more"))
		f.Close()
		data = append(data, "more"...)
		if err := os.Link(p, p[:len(p)-1]+"2"); err != nil {
			t.Errorf("%d: link: %v", n, err)
		}
		expectContent(t, m, name[:len(name)-1]+"2", data)
		if err := os.Remove(p[:len(p)-1] + "2"); err != nil {
			t.Errorf("%d: unlink of a link: %v", n, err)
		}
		// Short -> long -> long -> short, each one rename for the user.
		if err := os.Rename(p, m.path("short")); err != nil {
			t.Errorf("%d: rename long->short: %v", n, err)
		}
		if err := os.Rename(m.path("short"), p); err != nil {
			t.Errorf("%d: rename short->long: %v", n, err)
		}
		other := strings.Repeat("z", n)
		if err := os.Rename(p, m.path(other)); err != nil {
			t.Errorf("%d: rename long->long: %v", n, err)
		}
		if err := os.Rename(m.path(other), p); err != nil {
			t.Errorf("%d: rename back: %v", n, err)
		}
		expectContent(t, m, name, data)
		if _, err := os.Stat(m.path(other)); !os.IsNotExist(err) {
			t.Errorf("%d: the old name is still there: %v", n, err)
		}
		// Directories, symlinks and fifos of the same length.
		dn := strings.Repeat("d", n)
		if err := os.Mkdir(m.path(dn), 0o755); err != nil {
			t.Errorf("%d: mkdir: %v", n, err)
		} else if err := os.Remove(m.path(dn)); err != nil {
			t.Errorf("%d: rmdir: %v", n, err)
		}
		ln := strings.Repeat("l", n)
		if err := os.Symlink(name, m.path(ln)); err != nil {
			t.Errorf("%d: symlink: %v", n, err)
		} else if got, err := os.ReadFile(m.path(ln)); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%d: read through the symlink: %v", n, err)
		}
		os.Remove(m.path(ln))
		if err := unix.Mkfifo(m.path(strings.Repeat("f", n)), 0o644); err != nil {
			t.Errorf("%d: mkfifo: %v", n, err)
		}
		os.Remove(m.path(strings.Repeat("f", n)))
	}
	// readdir shows every name whole, and only the mount names.
	ents, err := os.ReadDir(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]bool{}
	for _, e := range ents {
		got[len(e.Name())] = true
		if strings.HasPrefix(e.Name(), "gzfs.longname.") {
			t.Errorf("readdir shows the backing form %q", e.Name())
		}
	}
	for _, n := range []int{252, 253, 254, 255} {
		if !got[n] {
			t.Errorf("readdir has no %d-byte name: %v", n, ents)
		}
	}
	// Past NAME_MAX: ENAMETOOLONG at once, in every form.
	tooLong := m.path(strings.Repeat("x", 256))
	_, err = os.Create(tooLong)
	expectErrno(t, err, syscall.ENAMETOOLONG)
	expectErrno(t, os.Mkdir(tooLong, 0o755), syscall.ENAMETOOLONG)
	_, err = os.Stat(tooLong)
	expectErrno(t, err, syscall.ENAMETOOLONG)
	expectErrno(t, os.Rename(m.path(strings.Repeat("a", 248)+".log"), tooLong), syscall.ENAMETOOLONG)
	// Across a remount, and without gzfs: zcat reads the data of a long
	// name, and its name file holds the name.
	m.remount()
	name := strings.Repeat("d", 251) + ".log"
	want := mustRead(t, m.path(name))
	m.unmount()
	bents, _ := os.ReadDir(m.backing)
	found := false
	for _, e := range bents {
		if !strings.HasSuffix(e.Name(), ".name") {
			continue
		}
		full, _ := os.ReadFile(filepath.Join(m.backing, e.Name()))
		if string(full) == name {
			found = true
			gz := strings.TrimSuffix(e.Name(), ".name") + ".gz"
			if got := zcat(t, filepath.Join(m.backing, gz)); !bytes.Equal(got, want) {
				t.Errorf("zcat %s: %d bytes, want %d", gz, len(got), len(want))
			}
		}
	}
	if !found {
		t.Errorf("no name file holds %q in %v", name, bents)
	}
	m.start()
}

// TestStaleSidecarsMount: a file deleted outside gzfs leaves its index and
// (after a crash) a complete journal in BACKING/.gzfs under its inode
// number; a new file with that number must get neither. The sidecars are
// forged for the new file's inode number from the old file's own (the old
// index header holds its birth), with the same size and last block.
func TestStaleSidecarsMount(t *testing.T) {
	m := newMount(t, "blocksize=4096")
	old := pattern(6*4096+100, 1)
	cur := bytes.Clone(old)
	copy(cur[4096:], bytes.Repeat([]byte("NEW "), 2048))
	mustWrite(t, m.path("old"), old)
	mustWrite(t, m.path("new"), cur)
	m.unmount()
	ino := func(p string) uint64 {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	oldIno, newIno := ino(m.bpath("old.gz")), ino(m.bpath("new.gz"))
	idx, err := os.ReadFile(m.bpath(".gzfs/" + strconv.FormatUint(oldIno, 10) + ".idx"))
	if err != nil {
		t.Fatal(err)
	}
	oldBirth := binary.LittleEndian.Uint64(idx[64:])
	if oldBirth == 0 {
		t.Fatal("the index records no birth for the backing file")
	}
	os.Remove(m.bpath("old.gz")) // outside gzfs: the sidecars stay
	binary.LittleEndian.PutUint64(idx[56:], newIno)
	binary.LittleEndian.PutUint32(idx[124:], crc32.ChecksumIEEE(idx[:124]))
	os.WriteFile(m.bpath(".gzfs/"+strconv.FormatUint(newIno, 10)+".idx"), idx, 0o644)
	// journal v2: magic | inode | birth | final size | count | (off, len, bytes) | crc
	var j bytes.Buffer
	j.WriteString("GZFSJNL2")
	binary.Write(&j, binary.LittleEndian, newIno)
	binary.Write(&j, binary.LittleEndian, oldBirth)
	binary.Write(&j, binary.LittleEndian, uint64(100))
	binary.Write(&j, binary.LittleEndian, uint32(1))
	binary.Write(&j, binary.LittleEndian, uint64(0))
	binary.Write(&j, binary.LittleEndian, uint32(100))
	j.Write(bytes.Repeat([]byte{0xAA}, 100))
	binary.Write(&j, binary.LittleEndian, crc32.ChecksumIEEE(j.Bytes()))
	os.WriteFile(m.bpath(".gzfs/"+strconv.FormatUint(newIno, 10)+".jnl"), j.Bytes(), 0o644)

	m.start()
	expectContent(t, m, "new", cur)
	if log := m.logText(); !strings.Contains(log, "dropping a write journal left by another file") {
		t.Errorf("no log line for the stale journal:\n%s", log)
	}
	// Writable and right after that too.
	f, err := os.OpenFile(m.path("new"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("xyz"), 5000)
	f.Close()
	copy(cur[5000:], "xyz")
	expectContent(t, m, "new", cur)
}
