package fs

import (
	"testing"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
)

// openedDir opens a fresh temporary directory (O_PATH) and returns the
// descriptor and the directory's inode number.
func openedDir(t *testing.T) (int, uint64) {
	t.Helper()
	fd, err := unix.Open(t.TempDir(), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return fd, st.Ino
}

// isOpen reports whether fd still refers to the directory with inode ino.
func isOpen(fd int, ino uint64) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Ino == ino
}

func newDirFds(t *testing.T) (*dirFds, *time.Time) {
	var c dirFds
	c.init()
	now := time.Unix(1e9, 0)
	c.now = func() time.Time { return now }
	t.Cleanup(c.close)
	return &c, &now
}

// TestDirFdsReuseForTTL: a cached descriptor is handed out again for
// dirFdTTL after it was opened, then dropped and closed.
func TestDirFdsReuseForTTL(t *testing.T) {
	c, now := newDirFds(t)
	in := new(fusefs.Inode)
	fd, ino := openedDir(t)
	c.put(in, fd, *now)()
	*now = now.Add(dirFdTTL - time.Millisecond)
	got, done, _, ok := c.get(in)
	if !ok || got != fd {
		t.Fatalf("get within the TTL: %d %v, want %d", got, ok, fd)
	}
	done()
	if !isOpen(fd, ino) {
		t.Fatal("descriptor closed while cached")
	}
	*now = now.Add(time.Millisecond)
	if _, _, _, ok := c.get(in); ok {
		t.Fatal("get after the TTL found the old descriptor")
	}
	if isOpen(fd, ino) {
		t.Fatal("expired descriptor still open")
	}
}

// TestDirFdsInUseOutlivesDrop: a descriptor dropped (forget, shed, a newer
// one for the same node) while an operation uses it stays open until that
// operation lets go.
func TestDirFdsInUseOutlivesDrop(t *testing.T) {
	c, now := newDirFds(t)
	in := new(fusefs.Inode)
	fd, ino := openedDir(t)
	c.put(in, fd, *now)()
	_, done1, _, _ := c.get(in)
	c.forget(in)
	if !isOpen(fd, ino) {
		t.Fatal("forget closed a descriptor in use")
	}
	done1()
	if isOpen(fd, ino) {
		t.Fatal("descriptor still open after its last user let go")
	}

	fd2, ino2 := openedDir(t)
	done2 := c.put(in, fd2, *now)
	fd3, ino3 := openedDir(t)
	c.put(in, fd3, *now)()
	if !isOpen(fd2, ino2) {
		t.Fatal("a newer descriptor closed the one in use")
	}
	done2()
	if isOpen(fd2, ino2) {
		t.Fatal("replaced descriptor still open after its user let go")
	}
	if got, done, _, ok := c.get(in); !ok || got != fd3 {
		t.Fatalf("get: %d %v, want the newer %d", got, ok, fd3)
	} else {
		done()
	}
	if n := c.shed(); n != 1 || isOpen(fd3, ino3) {
		t.Fatalf("shed closed %d, want 1 (the newer descriptor, unused)", n)
	}
}

// TestDirFdsBounded: the cache holds at most its limit; the oldest entry
// goes first, and expired entries before it.
func TestDirFdsBounded(t *testing.T) {
	c, now := newDirFds(t)
	type entry struct {
		in  *fusefs.Inode
		fd  int
		ino uint64
	}
	var es []entry
	for i := 0; i < c.limit+10; i++ {
		fd, ino := openedDir(t)
		e := entry{new(fusefs.Inode), fd, ino}
		c.put(e.in, fd, *now)()
		es = append(es, e)
		*now = now.Add(time.Microsecond)
	}
	if len(c.m) != c.limit {
		t.Fatalf("%d cached, want the limit %d", len(c.m), c.limit)
	}
	for i, e := range es {
		_, cached := c.m[e.in]
		if open := isOpen(e.fd, e.ino); cached != (i >= 10) || open != cached {
			t.Fatalf("entry %d: cached %v, open %v; want the 10 oldest dropped and closed", i, cached, open)
		}
	}
	*now = now.Add(dirFdTTL)
	fd, _ := openedDir(t)
	c.put(new(fusefs.Inode), fd, *now)()
	if len(c.m) != 1 {
		t.Fatalf("%d cached after the others expired, want 1", len(c.m))
	}
}

// TestDirFdsAgeOfTheWalk: a descriptor opened from a cached ancestor's is
// as old as the walk that opened the ancestor; an older walk's descriptor
// does not replace a newer one; expired descriptors are closed by the
// sweep, and once the cache is closed nothing is cached.
func TestDirFdsAgeOfTheWalk(t *testing.T) {
	c, now := newDirFds(t)
	in := new(fusefs.Inode)
	fd, ino := openedDir(t)
	c.put(in, fd, now.Add(-dirFdTTL+time.Millisecond))()
	if _, done, _, ok := c.get(in); !ok {
		t.Fatal("entry younger than the TTL not found")
	} else {
		done()
	}
	*now = now.Add(time.Millisecond)
	if _, _, _, ok := c.get(in); ok || isOpen(fd, ino) {
		t.Fatal("a descriptor outlived the TTL of the walk it came from")
	}

	newer, _ := openedDir(t)
	c.put(in, newer, *now)()
	older, olderIno := openedDir(t)
	done := c.put(in, older, now.Add(-time.Millisecond))
	if got, d, _, _ := c.get(in); got != newer {
		t.Fatalf("an older walk replaced the newer descriptor: got %d, want %d", got, newer)
	} else {
		d()
	}
	done()
	if isOpen(older, olderIno) {
		t.Fatal("the older walk's descriptor, not cached, stayed open")
	}

	if c.sweep == nil {
		t.Fatal("no sweep due with entries cached")
	}
	*now = now.Add(dirFdTTL)
	c.dropExpired()
	if len(c.m) != 0 || c.sweep != nil {
		t.Fatalf("%d entries after the sweep (sweep due: %v)", len(c.m), c.sweep != nil)
	}

	c.close()
	late, lateIno := openedDir(t)
	c.put(in, late, *now)()
	if len(c.m) != 0 || isOpen(late, lateIno) {
		t.Fatal("a descriptor was cached after close")
	}
}
