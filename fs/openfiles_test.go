package fs

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newTestFS(t *testing.T) *FS {
	t.Helper()
	fsys, err := New(t.TempDir(), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), FlushInterval: -1, IdleTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })
	return fsys
}

// TestOpenTableShares: handles of one key share one engine instance, which
// is closed at the last release and opened again afterwards.
func TestOpenTableShares(t *testing.T) {
	fsys := newTestFS(t)
	path := filepath.Join(fsys.Backing(), "f.gz")
	os.WriteFile(path, nil, 0o644)
	key := fileKeyOf(t, fsys, path)
	var opens atomic.Int32
	open := func() (int, bool, error) {
		opens.Add(1)
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
		return fd, false, err
	}
	a, sharedA, err := fsys.files.acquire(key, path, open)
	if err != nil {
		t.Fatal(err)
	}
	b, sharedB, err := fsys.files.acquire(key, path, open)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || sharedA || !sharedB || opens.Load() != 1 {
		t.Fatalf("same key: a==b %v, shared %v %v, opens %d", a == b, sharedA, sharedB, opens.Load())
	}
	if _, err := a.eng.WriteAt([]byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := b.eng.ReadAt(buf, 0); err != nil || string(buf) != "hello" {
		t.Fatalf("read through the other handle: %q %v", buf, err)
	}
	fsys.files.release(a)
	if fsys.files.get(key) != b {
		t.Fatal("released too early")
	}
	fsys.files.release(b) // the get above
	fsys.files.release(b)
	if fsys.files.get(key) != nil {
		t.Fatal("still open after the last release")
	}
	// The last release flushed: the backing file holds the data, and the
	// stamp says it is unchanged.
	st, _ := statAt(unix.AT_FDCWD, path)
	if !fsys.files.unchanged(key, &st) {
		t.Error("no stamp after the last release")
	}
	// Idle: taken again unchanged, it is the same instance.
	c, sharedC, err := fsys.files.acquire(key, path, open)
	if err != nil {
		t.Fatal(err)
	}
	if c != a || !sharedC || opens.Load() != 1 {
		t.Errorf("not resumed from idle: same %v, shared %v, opens %d", c == a, sharedC, opens.Load())
	}
	fsys.files.release(c)
	// Changed behind its back while idle (another process): opened anew.
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d, _, err := fsys.files.acquire(key, path, open)
	if err != nil {
		t.Fatal(err)
	}
	if d == a || opens.Load() != 2 || d.eng.Size() != 0 {
		t.Errorf("a file changed while idle was not opened anew: opens %d, size %d", opens.Load(), d.eng.Size())
	}
	// Idle past its time: closed. (The hour above keeps the steps before
	// from depending on how fast this goroutine runs.)
	fsys.files.mu.Lock()
	fsys.files.idleFor = 50 * time.Millisecond
	fsys.files.mu.Unlock()
	fsys.files.release(d)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		fsys.files.mu.Lock()
		_, there := fsys.files.m[key]
		fsys.files.mu.Unlock()
		if !there {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an idle instance was not closed 10 s after its 50 ms timeout")
		}
	}
	e, _, err := fsys.files.acquire(key, path, open)
	if err != nil {
		t.Fatal(err)
	}
	if e == d || opens.Load() != 3 {
		t.Errorf("an idle instance outlived its timeout: opens %d", opens.Load())
	}
	fsys.files.release(e)
}

// TestOpenTableConcurrent acquires and releases one key from many
// goroutines: every writer's data is there at the end (run with -race).
func TestOpenTableConcurrent(t *testing.T) {
	fsys := newTestFS(t)
	path := filepath.Join(fsys.Backing(), "f.gz")
	os.WriteFile(path, nil, 0o644)
	key := fileKeyOf(t, fsys, path)
	open := func() (int, bool, error) {
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
		return fd, false, err
	}
	const workers, rounds = 8, 30
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				of, _, err := fsys.files.acquire(key, path, open)
				if err != nil {
					t.Error(err)
					return
				}
				of.eng.WriteAt(bytes.Repeat([]byte{byte('a' + w)}, 100), int64((i*workers+w)*100))
				if err := fsys.files.release(of); err != nil {
					t.Error(err)
				}
			}
		}(w)
	}
	wg.Wait()
	of, _, err := fsys.files.acquire(key, path, open)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.files.release(of)
	got := make([]byte, workers*rounds*100)
	if _, err := of.eng.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < workers*rounds; i++ {
		if want := bytes.Repeat([]byte{byte('a' + i%workers)}, 100); !bytes.Equal(got[i*100:i*100+100], want) {
			t.Fatalf("chunk %d lost", i)
		}
	}
}

// fileKeyOf is the open-table key of the backing file at path.
func fileKeyOf(t *testing.T, fsys *FS, path string) fileKey {
	t.Helper()
	st, err := statAt(unix.AT_FDCWD, path)
	if err != nil {
		t.Fatal(err)
	}
	return fsys.keyOf(&st)
}
