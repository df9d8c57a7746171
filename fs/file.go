package fs

import (
	"context"
	"errors"
	"io"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/gzfs/gzfs/blockfile"
	"golang.org/x/sys/unix"
)

// gzHandle is one open of a gzfs file; all handles of an inode share the
// openFile (and its engine).
type gzHandle struct {
	fsys   *FS
	of     *openFile
	write  bool // opened for writing
	append bool // O_APPEND at the open: every write goes to the end (File.Append); each write says whether it still holds (appendNow)
}

// Read reads from the engine; short reads happen only at the end of file.
// The reply is the engine's inflated blocks themselves (ReadVec): go-fuse
// writes them to the kernel with one writev, no copy into dest.
func (h *gzHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	r := &vecReply{}
	n, err := h.of.eng.ReadVec(dest, off, &r.v)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, h.fsys.errno("read", h.of.name, err)
	}
	r.n = n
	if n == 0 { // go-fuse calls Done only for replies with bytes
		r.v.Release()
		return fuse.ReadResultData(nil), 0
	}
	return r, 0
}

// vecReply is a read reply made of a blockfile.Vec. go-fuse writes its
// Slices with one writev (it takes any reply with a Slices method so) and
// calls Done once the kernel has the bytes, which gives the engine's blocks
// back.
type vecReply struct {
	v blockfile.Vec
	n int
}

// Size is the length of the reply.
func (r *vecReply) Size() int { return r.n }

// Slices are the bytes of the reply, in order.
func (r *vecReply) Slices() ([][]byte, fuse.Status) { return r.v.Slices, fuse.OK }

// Bytes is the reply in one piece (for go-fuse's other write paths).
func (r *vecReply) Bytes(buf []byte) ([]byte, fuse.Status) {
	buf = buf[:0]
	for _, s := range r.v.Slices {
		buf = append(buf, s...)
	}
	return buf, fuse.OK
}

// Done releases the blocks.
func (r *vecReply) Done() { r.v.Release() }

// Write writes at off, or at the end of the file for an O_APPEND handle, so
// that appends of several processes never interleave within a write.
func (h *gzHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if !h.write {
		return 0, syscall.EBADF
	}
	var n int
	var err error
	t := changeTime()
	if h.fsys.appendNow(ctx, h.append) {
		_, err = h.of.eng.Append(data)
		if err == nil {
			n = len(data)
		}
	} else {
		n, err = h.of.eng.WriteAt(data, off)
	}
	h.of.touch(t)
	if err != nil {
		return uint32(n), h.fsys.errno("write", h.of.name, err)
	}
	return uint32(n), 0
}

// Flush runs at every close(2): the data reaches the backing file, and an
// error such as ENOSPC reaches the program that closes.
func (h *gzHandle) Flush(ctx context.Context) syscall.Errno {
	if !h.write {
		return 0
	}
	return h.fsys.errno("flush", h.of.name, h.of.eng.Flush())
}

// Fsync makes the data and the index durable.
func (h *gzHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if h.of.readOnly {
		return 0 // nothing can be dirty
	}
	return h.fsys.errno("fsync", h.of.name, h.of.eng.Sync())
}

// Release drops the handle's reference; the last one closes the engine.
// When the last writing handle goes while others still read, the engine
// lets go of its lock (see openFile.unlockIfReading).
func (h *gzHandle) Release(ctx context.Context) syscall.Errno {
	if h.write {
		h.of.releaseWriter()
	}
	if err := h.fsys.files.release(h.of); err != nil {
		h.fsys.errno("release", h.of.name, err)
	}
	return 0
}

// Lseek answers SEEK_DATA and SEEK_HOLE: a gzfs file is data from 0 to its
// size (zero blocks are stored, compressed, not as holes).
func (h *gzHandle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	size := uint64(h.of.eng.Size())
	switch whence {
	case unix.SEEK_DATA:
		if off >= size {
			return 0, syscall.ENXIO
		}
		return off, 0
	case unix.SEEK_HOLE:
		if off >= size {
			return 0, syscall.ENXIO
		}
		return size, 0
	}
	return 0, syscall.EINVAL
}

// Allocate implements fallocate(2) for what a compressed file can honour:
// mode 0 grows the file to off+size with zeros (EFBIG past the maximum file
// size, ENOSPC when the zero blocks would not fit); FALLOC_FL_KEEP_SIZE
// alone succeeds without reserving anything (compressed space cannot be
// reserved ahead); FALLOC_FL_PUNCH_HOLE and FALLOC_FL_ZERO_RANGE write
// zeros over the range inside the file (zero blocks take about 100 bytes
// each). Other modes are EOPNOTSUPP.
func (h *gzHandle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	if !h.write {
		return syscall.EBADF
	}
	const known = unix.FALLOC_FL_KEEP_SIZE | unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_ZERO_RANGE
	if mode&^known != 0 || mode&unix.FALLOC_FL_PUNCH_HOLE != 0 && mode&unix.FALLOC_FL_ZERO_RANGE != 0 {
		return syscall.EOPNOTSUPP
	}
	if off > uint64(blockfile.MaxFileSize) || size > uint64(blockfile.MaxFileSize)-off {
		return syscall.EFBIG
	}
	start, end := int64(off), int64(off+size)
	eng := h.of.eng
	t := changeTime()
	if mode&(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_ZERO_RANGE) != 0 {
		zeros := make([]byte, min(end-start, 1<<20))
		for at := start; at < min(end, eng.Size()); at += int64(len(zeros)) {
			n := min(int64(len(zeros)), min(end, eng.Size())-at)
			if _, err := eng.WriteAt(zeros[:n], at); err != nil {
				return h.fsys.errno("fallocate", h.of.name, err)
			}
		}
	}
	if mode&unix.FALLOC_FL_KEEP_SIZE == 0 {
		if err := eng.Grow(end); err != nil {
			return h.fsys.errno("fallocate", h.of.name, err)
		}
	}
	h.of.touch(t)
	return 0
}
