package fs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/gzfs/gzfs/blockfile"
)

func TestToErrno(t *testing.T) {
	be := &blockfile.BlockError{File: "a.gz", Block: 3, Err: errors.New("crc mismatch")}
	tests := []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{be, syscall.EIO},
		{fmt.Errorf("read: %w", be), syscall.EIO},
		{fmt.Errorf("write: %w", syscall.ENOSPC), syscall.ENOSPC},
		{&os.PathError{Op: "open", Path: "x", Err: syscall.ENOENT}, syscall.ENOENT},
		{blockfile.ErrReadOnly, syscall.EROFS},
		{errors.New("something odd"), syscall.EIO},
		{io.ErrUnexpectedEOF, syscall.EIO},
		{os.ErrNotExist, syscall.ENOENT},
	}
	for _, tt := range tests {
		if got := toErrno(tt.err); got != tt.want {
			t.Errorf("toErrno(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
