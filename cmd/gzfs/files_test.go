package main

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestGrowPipe: the pipe 'gzfs cat' writes to is enlarged to hold one output
// chunk, and a regular file is left alone.
func TestGrowPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	growPipe(w, catChunk)
	got, err := unix.FcntlInt(w.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got < catChunk {
		t.Errorf("pipe holds %d bytes after growPipe, want %d", got, catChunk)
	}
	f, err := os.Create(t.TempDir() + "/plain")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	growPipe(f, catChunk) // must not fail or change anything
}
