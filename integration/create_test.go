package integration

import (
	"bytes"
	"os"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestCreateAppearsFilled: a file created through the mount appears in
// the backing directory already holding the BGZF EOF marker (made unnamed,
// written, then linked: O_TMPFILE), so a daemon killed between the create
// and the write never leaves an empty backing file, which is no gzip.
// An inotify watch of the backing directory sees the name created and the
// file never modified (the old create wrote the marker after the name
// existed: IN_CREATE, then IN_MODIFY).
func TestCreateAppearsFilled(t *testing.T) {
	m := newMount(t)
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(in)
	if _, err := unix.InotifyAddWatch(in, m.backing, unix.IN_CREATE|unix.IN_MODIFY); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"created", "made-by-mknod"} {
		if name == "created" {
			f, err := os.Create(m.path(name))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		} else if err := unix.Mknod(m.path(name), unix.S_IFREG|0o644, 0); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(m.bpath(name + ".gz")); err != nil || len(b) != 28 {
			t.Fatalf("%s: backing file %d bytes (%v), want the 28-byte EOF marker", name, len(b), err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	buf := make([]byte, 64<<10)
	n, err := unix.Read(in, buf)
	if err != nil {
		t.Fatalf("no inotify events: %v", err)
	}
	created := map[string]bool{}
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00"))
		off += unix.SizeofInotifyEvent + int(ev.Len)
		switch {
		case ev.Mask&unix.IN_CREATE != 0:
			created[name] = true
		case ev.Mask&unix.IN_MODIFY != 0 && (name == "created.gz" || name == "made-by-mknod.gz"):
			t.Errorf("%s was written after it got its name", name)
		}
	}
	if !created["created.gz"] || !created["made-by-mknod.gz"] {
		t.Errorf("creates seen: %v", created)
	}
}
