package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestENOSPC: a full backing file system reaches the writer as ENOSPC (at
// write, close or fsync), and the mount keeps working.
func TestENOSPC(t *testing.T) {
	m := newTmpfsMount(t, "3m")

	f, err := os.Create(m.path("fill"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 256<<10)
	var werr error
	for i := 0; i < 64 && werr == nil; i++ {
		rand.Read(chunk) // incompressible
		if _, werr = f.Write(chunk); werr == nil && i%4 == 3 {
			werr = f.Sync()
		}
	}
	if werr == nil {
		werr = f.Sync()
	}
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("filling the backing fs: %v, want ENOSPC", werr)
	}
	os.Remove(m.path("fill"))
	// The space comes back when the daemon has released the file (the
	// kernel sends RELEASE after close returns).
	deadline := time.Now().Add(5 * time.Second)
	for {
		var sfs unix.Statfs_t
		unix.Statfs(m.backing, &sfs)
		if int64(sfs.Bavail)*sfs.Bsize > 1<<20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.WriteFile(m.path("after"), []byte("still works"), 0o644); err != nil {
		t.Errorf("after ENOSPC: %v", err)
	}
}

// TestCorruptBlock: a damaged block reads as EIO with a log line naming the
// file and block; the other blocks stay readable.
func TestCorruptBlock(t *testing.T) {
	m := newMount(t, "blocksize=32768")
	data := pattern(5*32768, 11)
	os.WriteFile(m.path("f"), data, 0o644)
	m.unmount()

	// Find member 2 by its BSIZE fields and damage its deflate data.
	bp := m.bpath("f.gz")
	raw, _ := os.ReadFile(bp)
	off := 0
	for i := 0; i < 2; i++ {
		off += int(binary.LittleEndian.Uint16(raw[off+16:])) + 1
	}
	size := int(binary.LittleEndian.Uint16(raw[off+16:])) + 1
	for i := off + 40; i < off+size-20; i += 97 {
		raw[i] ^= 0x55
	}
	os.WriteFile(bp, raw, 0o644)

	m.start()
	f, err := os.Open(m.path("f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 4096)
	if _, err := f.ReadAt(b, 1000); err != nil || !bytes.Equal(b, data[1000:5096]) {
		t.Errorf("block 0: %v", err)
	}
	if _, err := f.ReadAt(b, 4*32768+100); err != nil || !bytes.Equal(b, data[4*32768+100:4*32768+4196]) {
		t.Errorf("block 4: %v", err)
	}
	_, err = f.ReadAt(b, 2*32768+100)
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("damaged block 2: %v, want EIO", err)
	}
	if _, err := io.ReadAll(f); !errors.Is(err, syscall.EIO) {
		t.Errorf("reading the whole file: %v, want EIO", err)
	}
	log := m.logText()
	if !strings.Contains(log, "corrupt") || !strings.Contains(log, "block=2") || !strings.Contains(log, "f.gz") {
		t.Errorf("no log line naming the file and block:\n%s", log)
	}
	// One line per failed request, naming the operation (the engine and
	// the mount each logged one).
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "corrupt") && (!strings.Contains(l, "op=read") || !strings.Contains(l, "block=2")) {
			t.Errorf("a corrupt-block log line without the operation or the block: %s", l)
		}
	}
}
