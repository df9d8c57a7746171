package blockfile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"os"

	"github.com/gzfs/gzfs/blockindex"
)

// The journal makes in-place rewrites of the backing file atomic. A batch of
// writes that touches bytes already in the file is first written whole to the
// journal and made durable; only then is it applied in place, from the
// journal; then the journal is emptied. A journal found non-empty at open is
// replayed: its writes are full images, so applying them again is harmless.
// A journal whose checksum fails was torn before the in-place writes began,
// so it is discarded. Journals are streamed to and from disk in chunks, so a
// batch that moves a long run of members costs disk, not memory.
// Layout (little-endian):
//
//	magic "GZFSJNL2" | inode uint64 | birth uint64 | final backing size uint64 | count uint32
//	count × (offset uint64 | length uint32 | bytes) | CRC32 of all before
//
// inode and birth are the backing file's blockindex.FileID: a journal left
// by a deleted file is never replayed into a new file that reuses its inode
// number. Journals of version 1 ("GZFSJNL1", no birth field) are still
// replayed when the inode matches.
const (
	journalMagic   = "GZFSJNL2"
	journalMagicV1 = "GZFSJNL1"
)

const (
	journalHeader   = 8 + 8 + 8 + 8 + 4
	journalHeaderV1 = 8 + 8 + 8 + 4
)

// batch is a checked journal: where its entries start, how many there are,
// and the backing size after it.
type batch struct {
	start     int64
	count     uint32
	finalSize int64
}

// copyChunk is the buffer size for streaming journal data.
const copyChunk = 1 << 20

// extent is one write of a batch: data, or when data is nil, n bytes read
// from offset src of the backing file when the journal is written.
type extent struct {
	off  int64
	data []byte
	src  int64
	n    int64
}

func (e extent) length() int64 {
	if e.data != nil {
		return int64(len(e.data))
	}
	return e.n
}

// errJournalTorn marks a journal that was not completely written.
var errJournalTorn = errors.New("journal incomplete")

// journal is the open journal file of one backing file.
type journal struct {
	path string
	f    backingFile
	// durable: the batch under way overwrites bytes an fsync made durable,
	// so the journal is fsynced before it is applied and the data before it
	// is retired (power loss). Otherwise (only bytes written since the last
	// fsync change) nothing is fsynced: the journal still protects against
	// a crash of the process, whose writes the kernel keeps.
	durable bool
	// unsynced: a retirement was not fsynced; File.Sync fsyncs the journal
	// before data written after the batch, so that an old batch can never
	// come back after power loss over data an fsync made durable.
	unsynced bool
	// lingering: a batch whose commit was fsynced may still be on disk,
	// its emptying not fsynced yet. The File fsyncs the journal before it
	// lets go of its lock (Idle, Close): another program may then write
	// the backing file and fsync it, and a batch coming back after a power
	// loss would be replayed over that (cutting the file to its final size).
	lingering bool
	empty     bool // known to be empty: commit need not truncate it
	// orderedFS: the journal's file system commits metadata in one global
	// order (ext4, XFS), so the fsync another program makes of the backing
	// file also makes the journal's earlier emptying durable. Elsewhere
	// (btrfs logs each fsynced inode on its own; a network file system),
	// an emptying not fsynced could be lost while that program's data is
	// not, and the batch come back over it: the File fsyncs the journal
	// before it lets go of the lock (File.settleJournal).
	orderedFS bool
}

func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	return &journal{path: path, f: wrapFile(f), durable: true, orderedFS: orderedFS(f)}, nil
}

// orderedFS reports whether f is on a file system that commits metadata
// in one global order (see journal.orderedFS); a variable for tests.
var orderedFS = func(f *os.File) bool {
	var sfs unix.Statfs_t
	return unix.Fstatfs(int(f.Fd()), &sfs) == nil && (sfs.Type == unix.EXT4_SUPER_MAGIC || sfs.Type == unix.XFS_SUPER_MAGIC)
}

// crcWriter feeds everything written through it to a CRC.
type crcWriter struct {
	w   io.Writer
	crc hash.Hash32
}

func (c crcWriter) Write(p []byte) (int, error) {
	c.crc.Write(p)
	return c.w.Write(p)
}

// commit writes a batch to the journal and makes it durable. Extents
// without data are copied from backing.
func (j *journal) commit(id blockindex.FileID, finalSize int64, writes []extent, backing io.ReaderAt) error {
	if !j.empty {
		if err := j.f.Truncate(0); err != nil {
			return fmt.Errorf("write journal: %w", err)
		}
	}
	total := int64(journalHeader + 4)
	for _, w := range writes {
		if w.length() > math.MaxUint32 {
			return fmt.Errorf("write journal: an entry of %d bytes does not fit its 32-bit length", w.length())
		}
		total += 12 + w.length()
	}
	// Buffers sized to the batch: most batches are one block.
	bw := bufio.NewWriterSize(io.NewOffsetWriter(j.f, 0), int(min(total, 256<<10)))
	cw := crcWriter{w: bw, crc: crc32.NewIEEE()}
	var hdr [journalHeader]byte
	copy(hdr[:], journalMagic)
	binary.LittleEndian.PutUint64(hdr[8:], id.Ino)
	binary.LittleEndian.PutUint64(hdr[16:], id.Birth)
	binary.LittleEndian.PutUint64(hdr[24:], uint64(finalSize))
	binary.LittleEndian.PutUint32(hdr[32:], uint32(len(writes)))
	cw.Write(hdr[:])
	for _, w := range writes {
		var eh [12]byte
		binary.LittleEndian.PutUint64(eh[:], uint64(w.off))
		binary.LittleEndian.PutUint32(eh[8:], uint32(w.length()))
		cw.Write(eh[:])
		if w.data != nil {
			cw.Write(w.data)
		} else if _, err := io.Copy(cw, io.NewSectionReader(backing, w.src, w.n)); err != nil {
			return fmt.Errorf("write journal: copy %d bytes at %d: %w", w.n, w.src, err)
		}
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], cw.crc.Sum32())
	bw.Write(sum[:])
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	j.empty = false
	if j.durable {
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("sync journal: %w", err)
		}
	}
	return nil
}

// retire empties the journal once its batch is applied, without fsync:
// until File.Sync makes the emptiness durable (before any data written
// after the batch), a power loss may bring the batch back, and replaying it
// is harmless, since a durable batch's data was fsynced before this and its
// images are that data, and a batch without fsync touched only bytes no
// fsync covered yet.
func (j *journal) retire() error {
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("retire journal: %w", err)
	}
	j.empty = true
	j.unsynced = true
	j.lingering = j.lingering || j.durable
	return nil
}

// sync makes the journal's state durable.
func (j *journal) sync() error {
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync journal: %w", err)
	}
	j.unsynced, j.lingering = false, false
	return nil
}

// check verifies the journal. ok is false for an empty or torn journal;
// stale names why a complete one is not for this file (another file had
// its inode number).
func (j *journal) check(id blockindex.FileID) (b batch, ok bool, stale string, err error) {
	st, err := j.f.Stat()
	if err != nil {
		return b, false, "", fmt.Errorf("read journal: %w", err)
	}
	size := st.Size()
	if size < journalHeaderV1+4 {
		return b, false, "", nil
	}
	var hdr [journalHeader]byte
	if _, err := j.f.ReadAt(hdr[:min(size, journalHeader)], 0); err != nil {
		return b, false, "", fmt.Errorf("read journal: %w", err)
	}
	le := binary.LittleEndian
	switch string(hdr[:8]) {
	case journalMagic:
		if size < journalHeader+4 {
			return b, false, "", nil
		}
		b = batch{start: journalHeader, finalSize: int64(le.Uint64(hdr[24:])), count: le.Uint32(hdr[32:])}
	case journalMagicV1:
		b = batch{start: journalHeaderV1, finalSize: int64(le.Uint64(hdr[16:])), count: le.Uint32(hdr[24:])}
	default:
		return b, false, "", nil
	}
	crc := crc32.NewIEEE()
	if _, err := io.Copy(crc, io.NewSectionReader(j.f, 0, size-4)); err != nil {
		return b, false, "", fmt.Errorf("read journal: %w", err)
	}
	var sum [4]byte
	if _, err := j.f.ReadAt(sum[:], size-4); err != nil {
		return b, false, "", fmt.Errorf("read journal: %w", err)
	}
	if crc.Sum32() != le.Uint32(sum[:]) {
		return b, false, "", nil
	}
	switch ino := le.Uint64(hdr[8:]); {
	case ino != id.Ino:
		return b, false, fmt.Sprintf("written for inode %d", ino), nil
	case b.start == journalHeader && le.Uint64(hdr[16:]) != id.Birth:
		return b, false, fmt.Sprintf("written for an earlier file with inode %d (birth %d, this one %d)", ino, le.Uint64(hdr[16:]), id.Birth), nil
	}
	return b, true, "", nil
}

// apply copies the checked batch in the journal to fd, sets the final size
// and syncs.
func (j *journal) apply(fd backingFile, b batch) error {
	st, err := j.f.Stat()
	if err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	end := st.Size() - 4
	pos, count, finalSize := b.start, b.count, b.finalSize
	buf := make([]byte, min(copyChunk, max(end-pos, 1)))
	for i := uint32(0); i < count; i++ {
		var eh [12]byte
		if pos+12 > end {
			return fmt.Errorf("journal entry %d: %w", i, errJournalTorn)
		}
		if _, err := j.f.ReadAt(eh[:], pos); err != nil {
			return fmt.Errorf("read journal: %w", err)
		}
		off := int64(binary.LittleEndian.Uint64(eh[:]))
		n := int64(binary.LittleEndian.Uint32(eh[8:]))
		pos += 12
		if pos+n > end || off < 0 {
			return fmt.Errorf("journal entry %d: %w", i, errJournalTorn)
		}
		for done := int64(0); done < n; {
			c := min(n-done, int64(len(buf)))
			if _, err := j.f.ReadAt(buf[:c], pos+done); err != nil {
				return fmt.Errorf("read journal: %w", err)
			}
			if _, err := fd.WriteAt(buf[:c], off+done); err != nil {
				return fmt.Errorf("write at %d: %w", off+done, err)
			}
			done += c
		}
		pos += n
	}
	return j.finish(fd, finalSize)
}

// applyFromMemory applies a batch just committed whose extents all carry
// their data (no moves within the backing file) from those bytes, the ones
// the journal holds, instead of reading them back from it.
func (j *journal) applyFromMemory(fd backingFile, writes []extent, finalSize int64) error {
	for _, w := range writes {
		if _, err := fd.WriteAt(w.data, w.off); err != nil {
			return fmt.Errorf("write at %d: %w", w.off, err)
		}
	}
	return j.finish(fd, finalSize)
}

// finish sets the backing size after an applied batch and, for a durable
// batch, fsyncs the data.
func (j *journal) finish(fd backingFile, finalSize int64) error {
	if err := fd.Truncate(finalSize); err != nil {
		return fmt.Errorf("set size %d: %w", finalSize, err)
	}
	if j.durable {
		if err := fd.Sync(); err != nil {
			return fmt.Errorf("fsync: %w", err)
		}
	}
	return nil
}

func (j *journal) close() error { return j.f.Close() }
