package integration

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestENOSPCEveryPoint fills a small backing filesystem (tmpfs) at a random
// point of each kind of change: appends, an in-place rewrite that grows a
// block (journal, members moved), a zero fill, and an index growth. Each
// round leaves a random amount of free space, then makes the change and
// fsyncs. Whatever happens: an error is ENOSPC and reaches the program
// (write, fsync or close); the backing file passes gzip -t and holds, byte
// for byte, the last synced content or the attempted one; after the space
// is freed the file works again.
func TestENOSPCEveryPoint(t *testing.T) {
	// idle=0: the engine closes at the last release, so waitReleased knows
	// when the daemon is done with a file.
	m := newTmpfsMount(t, "12m", "blocksize=4096", "flush=0", "idle=0")
	r := rand.New(rand.NewPCG(11, 12))
	kinds := []string{"append", "rewrite", "zerofill", "indexgrowth"}
	failed := map[string]int{}
	for round := 0; round < 32; round++ {
		kind := kinds[round%len(kinds)]
		t.Run(fmt.Sprintf("%d-%s", round, kind), func(t *testing.T) {
			if enospcRound(t, m, r, round, kind) {
				failed[kind]++
			}
		})
	}
	for _, k := range kinds {
		if failed[k] == 0 {
			t.Errorf("no %s round ran out of space: the test did not reach ENOSPC there", k)
		}
	}
	t.Logf("rounds that ran out of space: %v", failed)
}

// enospcRound runs one round and reports whether it hit ENOSPC.
func enospcRound(t *testing.T, m *mountProc, r *rand.Rand, round int, kind string) bool {
	name := "f" + strconv.Itoa(round)
	text := func(n int) []byte {
		b := make([]byte, n)
		for i := 0; i < n; {
			i += copy(b[i:], fmt.Sprintf("line %d of round %d\n", i, round))
		}
		return b
	}
	noise := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	synced := text(1 << 20)
	mustWrite(t, m.path(name), synced)
	f, err := os.OpenFile(m.path(name), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}

	// The attempted content, and how much room the change may need.
	want := bytes.Clone(synced)
	var change func() error
	var need int64
	switch kind {
	case "append":
		add := noise(400 << 10)
		want = append(want, add...)
		need = int64(len(add))
		change = func() error { _, err := f.WriteAt(add, int64(len(synced))); return err }
	case "rewrite":
		off := int64(r.IntN(len(synced) / 2))
		add := noise(96 << 10)
		copy(want[off:], add)
		need = 2 * int64(len(add)) // the journal and the grown members
		change = func() error { _, err := f.WriteAt(add, off); return err }
	case "zerofill":
		grow := int64(10+r.IntN(20)) << 20 // 40-80 bytes of zero blocks per 4 KiB
		want = append(want, make([]byte, grow)...)
		copy(want[len(want)-4:], "tail")
		need = grow / 4096 * 80
		change = func() error {
			if err := f.Truncate(int64(len(want))); err != nil {
				return err
			}
			_, err := f.WriteAt([]byte("tail"), int64(len(want))-4)
			return err
		}
	case "indexgrowth":
		add := bytes.Repeat([]byte("z"), 12<<20) // 3,000 blocks: the index passes 1,024 records
		want = append(want, add...)
		need = 3000 * 100
		change = func() error { _, err := f.WriteAt(add, int64(len(synced))); return err }
	}

	// Leave a random share of what the change needs.
	ballast := m.bpath("ballast")
	os.Remove(ballast)
	var sfs unix.Statfs_t
	unix.Statfs(m.backing, &sfs)
	free := int64(sfs.Bavail) * sfs.Bsize
	leave := r.Int64N(need + need/2)
	if free > leave {
		if err := os.WriteFile(ballast, make([]byte, free-leave), 0o644); err != nil && !errors.Is(err, syscall.ENOSPC) {
			t.Fatal(err)
		}
	}

	var errs []error
	if err := change(); err != nil {
		errs = append(errs, fmt.Errorf("change: %w", err))
	}
	if err := f.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("fsync: %w", err))
	}
	if err := f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close: %w", err))
	}
	for _, err := range errs {
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("leaving %d bytes free: %v, want ENOSPC", leave, err)
		}
	}
	waitReleased(t, m, name+".gz")

	// On the backing file, without gzfs: a valid gzip stream of the old or
	// the new bytes.
	bp := m.bpath(name + ".gz")
	gzipTest(t, bp)
	got := zcat(t, bp)
	if err := oldOrNew(got, synced, want); err != nil {
		t.Fatalf("leaving %d bytes free (errors %v): backing file: %v", leave, errs, err)
	}
	if len(errs) == 0 && !bytes.Equal(got, want) {
		t.Fatalf("no error reported, but the backing file holds %d bytes, want %d", len(got), len(want))
	}

	// Space back: the file works again.
	os.Remove(ballast)
	expectContent(t, m, name, got)
	g, err := os.OpenFile(m.path(name), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.WriteAt([]byte("after"), 10); err != nil {
		t.Fatalf("write after freeing space: %v", err)
	}
	if err := g.Sync(); err != nil {
		t.Fatalf("fsync after freeing space: %v", err)
	}
	g.Close()
	copy(got[10:], "after")
	expectContent(t, m, name, got)
	os.Remove(m.path(name))
	return len(errs) > 0
}

// oldOrNew checks that every byte of got is the byte of old or of new at
// its offset, and that its length is between theirs.
func oldOrNew(got, old, new []byte) error {
	lo, hi := min(len(old), len(new)), max(len(old), len(new))
	if len(got) < lo || len(got) > hi {
		return fmt.Errorf("%d bytes, want %d to %d", len(got), lo, hi)
	}
	for i, c := range got {
		if !(i < len(old) && c == old[i] || i < len(new) && c == new[i]) {
			return fmt.Errorf("byte %d is %#x: neither the old (%d bytes) nor the new (%d bytes) content", i, c, len(old), len(new))
		}
	}
	return nil
}

// waitReleased waits until the daemon has no descriptor of the backing file
// bname open any more (the kernel sends RELEASE after close returns).
func waitReleased(t *testing.T, m *mountProc, bname string) {
	t.Helper()
	fdDir := "/proc/" + strconv.Itoa(m.cmd.Process.Pid) + "/fd"
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		ents, err := os.ReadDir(fdDir)
		if err != nil {
			t.Fatal(err)
		}
		open := false
		for _, e := range ents {
			if l, _ := os.Readlink(fdDir + "/" + e.Name()); strings.HasSuffix(l, "/"+bname) {
				open = true
				break
			}
		}
		if !open {
			return
		}
	}
	t.Fatalf("the daemon still has %s open", bname)
}

// TestIdleNeedsNoTemporarySpace: an engine left idle (after a write's
// close, after a read-only open) copies nothing of its index: with the
// daemon's temporary directory ($TMPDIR) full, both stay idle (an engine
// that could not copy its index used to be closed instead, and every open
// copied the whole index of a large file), nothing is written there, and
// the file reads back whole.
func TestIdleNeedsNoTemporarySpace(t *testing.T) {
	requireRoot(t)
	tmp := filepath.Join(t.TempDir(), "tmp")
	os.Mkdir(tmp, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", tmp).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", tmp).Run() })
	m := newMount(t)
	m.unmount()
	m.wrap = []string{"env", "TMPDIR=" + tmp}
	m.start()
	// 24 MiB of text: over 400 blocks, a sidecar index of more than the
	// 4 KiB the temporary directory holds.
	var b bytes.Buffer
	for i := 0; b.Len() < 24<<20; i++ {
		fmt.Fprintf(&b, "line %d of a file whose index does not fit in TMPDIR\n", i)
	}
	data := b.Bytes()
	mustWrite(t, m.path("big"), data)
	for round := 0; round < 3; round++ { // read-only opens of the idle engine
		if got := mustRead(t, m.path("big")); !bytes.Equal(got, data) {
			t.Fatalf("round %d: read back %d bytes, want %d", round, len(got), len(data))
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(tmp, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks != st.Bfree {
		t.Errorf("%d blocks of the temporary directory in use, want none", st.Blocks-st.Bfree)
	}
	if strings.Contains(m.logText(), "closing instead of keeping idle") {
		t.Errorf("an engine was closed instead of kept idle:\n%s", m.logText())
	}
	if got := mustRead(t, m.path("big")); !bytes.Equal(got, data) {
		t.Fatalf("read back: %d bytes, want %d", len(got), len(data))
	}
	m.unmount()
	checkBacking(t, m, "big", data)
	if strings.Contains(m.logText(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", m.logText())
	}
}
