// Package blockindex is the seek index of one gzfs file: a small sidecar
// file, mapped into memory with mmap, that maps a block number to where its
// member lives in the backing file and which uncompressed bytes it holds.
//
// Layout (little-endian), format version 1:
//
//	header, 128 bytes:
//	  0  magic "GZFSIDX1"
//	  8  version uint32 (1)
//	 12  record size uint32 (32)
//	 16  block size uint32: uncompressed bytes of every block but the last
//	 20  flags uint32: bit 0 = uniform (block i starts at i*block size),
//	     bit 1 = dirty (the backing file is being changed; rebuild if found set)
//	 24  record count uint64
//	 32  logical (uncompressed) size uint64
//	 40  backing file size uint64
//	 48  tail check uint64: the last 8 bytes (CRC32, ISIZE) of the backing file
//	 56  backing inode uint64
//	 64  backing birth uint64: the birth time or generation of the backing
//	     file (0: the filesystem tells neither), so that an index left by a
//	     deleted file never serves a new file that reuses its inode number
//	 72  synced data end uint64: where the data members ended at the last
//	     fsync (valid when flag bit 2 is set): bytes past it were never
//	     made durable, so rewriting them in place needs no fsync
//	 80  reserved
//	124  CRC32 of bytes 0..123
//	record i at 128 + 32*i:
//	  0  backing offset uint64
//	  8  logical offset uint64
//	 16  member size uint32
//	 20  uncompressed length uint32
//	 24  padding uint32: its length; bit 31 set: the padding precedes a
//	     complete deflate stream; clear: it ends the deflate data (0: unknown)
//	 28  CRC32 of bytes 0..27 of the record and of i
//
// Lookup is O(1) arithmetic for uniform files and a binary search over the
// mapped records otherwise; nothing on the Go heap grows with the file. The
// index is a cache: Open refuses anything that does not check out, and the
// caller rebuilds it from the BGZF headers.
//
// An Index is not safe for concurrent use: callers serialize mutations with
// reads (gzfs's engine holds its file lock in write mode to mutate).
package blockindex

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"runtime/debug"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Format constants.
const (
	Magic      = "GZFSIDX1"
	Version    = 1
	HeaderSize = 128
	RecordSize = 32
	minRecords = 1024    // first mapping: 32 KiB of records
	maxGrowth  = 1 << 21 // grow by at most this many records (64 MiB) at once
	flagUnif   = 1 << 0
	flagDirty  = 1 << 1
	flagSynced = 1 << 2 // the synced data end at 72 is valid
	crcOffset  = 124
)

// ErrInvalid is wrapped by every reason Open refuses an index file.
var ErrInvalid = errors.New("index invalid")

// Record describes one block.
type Record struct {
	Offset  int64  // where the member starts in the backing file
	Logical int64  // first uncompressed byte of the block
	Size    uint32 // member size in bytes
	Length  uint32 // uncompressed bytes in the block
	Pad     uint32 // the member's padding, see the package comment; 0 if unknown
}

// End returns the backing offset just past the member.
func (r Record) End() int64 { return r.Offset + int64(r.Size) }

// LogicalEnd returns the logical offset just past the block.
func (r Record) LogicalEnd() int64 { return r.Logical + int64(r.Length) }

// FileID identifies a backing file. Filesystems reuse inode numbers at
// once, so Birth (its birth time or generation, 0 when the filesystem tells
// neither) tells a new file from a deleted one with the same number.
type FileID struct {
	Ino   uint64
	Birth uint64
}

// Index is an open, mapped index file.
type Index struct {
	f    *os.File
	mem  []byte
	heap bool // mem is Go memory, not a mapping (CreateMem: a few records, no munmap)
	// A view (View, OpenView) reads its header from hdr and its last record
	// from tail, its own copies, and its other records from mem, the
	// mapping of the index it views: owner's, if it owns one (OpenView).
	hdr, tail []byte
	owner     *Index
	touches   atomic.Uint64 // record reads and writes, for trim
	unsynced  bool          // changed since the last Sync
	// dirtySynced: the dirty flag is set and a Sync made it durable.
	dirtySynced bool
	// dev, ino identify the sidecar file once FileID asked (0: not yet).
	dev, ino uint64
}

// Create makes a new empty index at path (replacing any file there) for the
// backing file id with the given block size.
func Create(path string, id FileID, blockSize int) (*Index, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create index: %w", err)
	}
	x := &Index{f: f}
	if err := x.remap(minRecords); err != nil {
		f.Close()
		return nil, err
	}
	x.init(id, blockSize)
	return x, nil
}

// CreateMem makes a new empty index in memory, with no file: the index of
// a small file, rebuilt from its one or two member headers at every open,
// costs no sidecar. Persist writes it to a file when the file outgrows
// that. Its few hundred bytes are Go memory, not a mapping: an mmap and
// an munmap (a TLB shootdown on every core the daemon runs on) per open
// of a small file cost more than they hold.
func CreateMem(id FileID, blockSize int) (*Index, error) {
	x := &Index{mem: make([]byte, HeaderSize+8*RecordSize), heap: true}
	x.init(id, blockSize)
	return x, nil
}

// InMemory reports whether the index has no sidecar file behind it: one
// made by CreateMem (in Go memory, or in an anonymous mapping once it grew).
func (x *Index) InMemory() bool { return x.f == nil && x.hdr == nil }

// Persist writes an in-memory index to a new file at path (replacing any
// file there) and maps that file from now on.
func (x *Index) Persist(path string) error {
	if x.f != nil {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create index: %w", err)
	}
	old := x.mem
	y := &Index{f: f}
	n := max(x.Len(), minRecords)
	if err := y.remap(n); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	copy(y.mem, old[:HeaderSize+x.Len()*RecordSize])
	if !x.heap {
		unix.Munmap(old)
	}
	x.f, x.mem, x.heap, x.unsynced = y.f, y.mem, false, true
	return nil
}

// init writes the header of a new empty index.
func (x *Index) init(id FileID, blockSize int) {
	copy(x.mem, Magic)
	x.put32(8, Version)
	x.put32(12, RecordSize)
	x.put32(16, uint32(blockSize))
	x.put32(20, flagUnif)
	x.put64(56, id.Ino)
	x.put64(64, id.Birth)
	x.seal()
}

// Header is what an index header says of its backing file (see Peek).
type Header struct {
	Logical, Backing int64
	Tail             uint64
	Dirty            bool
}

// Peek reads and checks the header of the index at path for the backing
// file id, without mapping it or changing anything: a cheap answer to
// "how big is this file" for a stat. Errors wrap ErrInvalid or
// os.ErrNotExist, as for Open.
func Peek(path string, id FileID) (Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, fmt.Errorf("open index: %w", err)
	}
	defer f.Close()
	x := &Index{mem: make([]byte, HeaderSize)}
	if _, err := io.ReadFull(f, x.mem); err != nil {
		return Header{}, fmt.Errorf("%w: short header: %v", ErrInvalid, err)
	}
	if err := x.checkHeader(id); err != nil {
		return Header{}, err
	}
	return Header{Logical: x.LogicalSize(), Backing: x.BackingSize(), Tail: x.Tail(), Dirty: x.Dirty()}, nil
}

// Open maps the index at path and checks its header against the backing
// file id. Any mismatch gives an error wrapping ErrInvalid (or
// os.ErrNotExist): the caller rebuilds the index.
func Open(path string, id FileID, readOnly bool) (*Index, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	x, err := openFile(f, id, readOnly)
	if err != nil {
		f.Close()
		return nil, err
	}
	return x, nil
}

// OpenView maps the index at path read-only and returns a view of it (see
// View) that owns the mapping, checked as Open checks, from the copies the
// view keeps: for a reader of a file another process holds, whose writer
// changes the sidecar in place. A header or last record torn by a change
// in flight fails its checksum, and a sidecar cut short under the mapping
// fails too (ErrInvalid). Close unmaps it.
func OpenView(path string, id FileID) (*Index, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	mem, err := mapFile(f, true)
	if err != nil {
		f.Close()
		return nil, err
	}
	v := &Index{mem: mem, hdr: make([]byte, HeaderSize), owner: &Index{f: f, mem: mem}}
	err = readFaulting(v.hdr, mem[:HeaderSize])
	if err == nil {
		err = v.check(id)
	}
	if n := v.Len(); err == nil && n > 0 {
		v.tail = make([]byte, RecordSize)
		if err = readFaulting(v.tail, mem[HeaderSize+(n-1)*RecordSize:][:RecordSize]); err == nil {
			_, err = decode(v.tail, n-1)
		}
	}
	if err != nil {
		v.Close()
		if !errors.Is(err, ErrInvalid) {
			err = fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return nil, err
	}
	return v, nil
}

func openFile(f *os.File, id FileID, readOnly bool) (*Index, error) {
	mem, err := mapFile(f, readOnly)
	if err != nil {
		return nil, err
	}
	x := &Index{f: f, mem: mem}
	if err := x.check(id); err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	return x, nil
}

// mapFile maps the whole index file f, shared, once its size is that of a
// header and whole records.
func mapFile(f *os.File, readOnly bool) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat index: %w", err)
	}
	if st.Size() < HeaderSize || (st.Size()-HeaderSize)%RecordSize != 0 {
		return nil, fmt.Errorf("%w: size %d", ErrInvalid, st.Size())
	}
	prot := unix.PROT_READ
	if !readOnly {
		prot |= unix.PROT_WRITE
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap index: %w", err)
	}
	return mem, nil
}

func (x *Index) check(id FileID) error {
	if err := x.checkHeader(id); err != nil {
		return err
	}
	if x.Len() > x.capacity() {
		return fmt.Errorf("%w: %d records in room for %d", ErrInvalid, x.Len(), x.capacity())
	}
	return nil
}

// checkHeader checks the header fields alone.
func (x *Index) checkHeader(id FileID) error {
	switch {
	case string(x.header()[:8]) != Magic:
		return fmt.Errorf("%w: bad magic", ErrInvalid)
	case x.get32(8) != Version:
		return fmt.Errorf("%w: version %d", ErrInvalid, x.get32(8))
	case x.get32(12) != RecordSize:
		return fmt.Errorf("%w: record size %d", ErrInvalid, x.get32(12))
	case crc32.ChecksumIEEE(x.header()[:crcOffset]) != x.get32(crcOffset):
		return fmt.Errorf("%w: header checksum", ErrInvalid)
	case x.get64(56) != id.Ino:
		return fmt.Errorf("%w: made for inode %d, not %d", ErrInvalid, x.get64(56), id.Ino)
	case x.get64(64) != id.Birth:
		return fmt.Errorf("%w: made for another file with inode %d (birth %d, not %d)", ErrInvalid, id.Ino, x.get64(64), id.Birth)
	case x.get32(16) == 0:
		return fmt.Errorf("%w: block size 0", ErrInvalid)
	}
	return nil
}

// header returns the header's bytes: a view's own copy, else the mapping's.
func (x *Index) header() []byte {
	if x.hdr != nil {
		return x.hdr
	}
	return x.mem
}

func (x *Index) get32(off int) uint32    { return binary.LittleEndian.Uint32(x.header()[off:]) }
func (x *Index) get64(off int) uint64    { return binary.LittleEndian.Uint64(x.header()[off:]) }
func (x *Index) put32(off int, v uint32) { binary.LittleEndian.PutUint32(x.header()[off:], v) }
func (x *Index) put64(off int, v uint64) { binary.LittleEndian.PutUint64(x.header()[off:], v) }

// seal recomputes the header checksum after a header change.
func (x *Index) seal() {
	x.put32(crcOffset, crc32.ChecksumIEEE(x.header()[:crcOffset]))
	x.unsynced = true
}

func (x *Index) capacity() int64 { return int64(len(x.mem)-HeaderSize) / RecordSize }

// remap grows the file to hold n records and maps it again. The new space
// is allocated first, so a full disk is an error here and never a SIGBUS
// when the mapping is written.
func (x *Index) remap(n int64) error {
	size := HeaderSize + n*RecordSize
	old := int64(len(x.mem))
	if x.f == nil && x.mem != nil { // in memory: a bigger anonymous mapping
		mem, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			return fmt.Errorf("map index: %w", err)
		}
		copy(mem, x.mem)
		if !x.heap {
			unix.Munmap(x.mem)
		}
		x.mem, x.heap = mem, false // anonymous now: never trimmed
		return nil
	}
	if err := allocate(x.f, old, size-old); err != nil {
		return fmt.Errorf("grow index: %w", err)
	}
	if x.mem != nil {
		if err := unix.Munmap(x.mem); err != nil {
			return fmt.Errorf("unmap index: %w", err)
		}
		x.mem = nil
	}
	mem, err := unix.Mmap(int(x.f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap index: %w", err)
	}
	x.mem = mem
	return nil
}

// BlockSize returns the nominal uncompressed size of a block.
func (x *Index) BlockSize() int { return int(x.get32(16)) }

// SetBlockSize changes the block size. The records stay as they are: a
// caller that changes it under records sets the uniform flag again
// (CheckUniform).
func (x *Index) SetBlockSize(b int) {
	x.put32(16, uint32(b))
	x.seal()
}

// Uniform reports whether every block but the last holds BlockSize bytes, so
// that block i starts at i*BlockSize.
func (x *Index) Uniform() bool { return x.get32(20)&flagUnif != 0 }

// Dirty reports whether the index was left marked as being changed.
func (x *Index) Dirty() bool { return x.get32(20)&flagDirty != 0 }

// SetDirty marks the index as (not) being changed. An index found dirty at
// open is not trusted.
func (x *Index) SetDirty(dirty bool) {
	if dirty == x.Dirty() {
		return
	}
	flags := x.get32(20) &^ flagDirty
	if dirty {
		flags |= flagDirty
	}
	x.put32(20, flags)
	x.seal()
	x.dirtySynced = false
}

// DirtyDurable reports whether the dirty flag is set and a Sync made it
// durable since it was set.
func (x *Index) DirtyDurable() bool { return x.dirtySynced && x.Dirty() }

// SyncedEnd returns where the data members ended at the last fsync, and
// whether the index knows it (indexes of older gzfs versions do not).
func (x *Index) SyncedEnd() (int64, bool) {
	return int64(x.get64(72)), x.get32(20)&flagSynced != 0
}

// SetSyncedEnd records where the data members end at an fsync (callers
// make it durable with Sync).
func (x *Index) SetSyncedEnd(end int64) {
	x.put64(72, uint64(end))
	x.put32(20, x.get32(20)|flagSynced)
	x.seal()
}

// Len returns the number of records.
func (x *Index) Len() int64 { return int64(x.get64(24)) }

// LogicalSize returns the uncompressed size recorded in the header.
func (x *Index) LogicalSize() int64 { return int64(x.get64(32)) }

// BackingSize returns the backing file size recorded in the header.
func (x *Index) BackingSize() int64 { return int64(x.get64(40)) }

// Tail returns the tail check recorded in the header.
func (x *Index) Tail() uint64 { return x.get64(48) }

// SetState records the sizes and tail check after a change of the backing
// file. Write the records first.
func (x *Index) SetState(logical, backing int64, tail uint64) {
	x.put64(32, uint64(logical))
	x.put64(40, uint64(backing))
	x.put64(48, tail)
	x.seal()
}

// At returns record i. A record whose checksum fails gives ErrInvalid.
func (x *Index) At(i int64) (Record, error) {
	if i < 0 || i >= x.Len() {
		return Record{}, fmt.Errorf("index record %d of %d: out of range", i, x.Len())
	}
	if x.hdr != nil {
		return x.viewAt(i)
	}
	if i >= x.capacity() {
		// Another process grew the shared file past this mapping.
		return Record{}, fmt.Errorf("%w: record %d past the mapped %d", ErrInvalid, i, x.capacity())
	}
	x.note(i)
	return decode(x.mem[HeaderSize+i*RecordSize:][:RecordSize], i)
}

// decode checks and decodes p, the bytes of record i.
func decode(p []byte, i int64) (Record, error) {
	if recordCRC(p, i) != binary.LittleEndian.Uint32(p[28:]) {
		return Record{}, fmt.Errorf("%w: record %d checksum", ErrInvalid, i)
	}
	return Record{
		Offset:  int64(binary.LittleEndian.Uint64(p[0:])),
		Logical: int64(binary.LittleEndian.Uint64(p[8:])),
		Size:    binary.LittleEndian.Uint32(p[16:]),
		Length:  binary.LittleEndian.Uint32(p[20:]),
		Pad:     binary.LittleEndian.Uint32(p[24:]),
	}, nil
}

// View returns a read-only view of x for a reader that lets go of the lock
// that keeps other processes from changing x's file (an idle engine): the
// header and the last record are copied (the record count, sizes, flags
// and the last block's range stay what they are now), every other record
// is read from x's mapping when asked for. Nothing else is copied: a view
// of the index of a 1 TiB file costs 160 bytes, not 570 MB.
//
// Another process may change a record the view reads; each read takes the
// record's 32 bytes once and checks them (a torn record fails its
// checksum), and in a view of a uniform index a record that no longer
// describes block i of BlockSize bytes (the file was cut and written again
// since) fails as well, with ErrInvalid: callers read such a block again
// after a reload. A record that checks out describes the backing file as
// that process left it, which the caller checks the block against. A view
// of a file shortened under the mapping (no gzfs process shrinks an index
// in place; another program might) fails with ErrInvalid instead of
// crashing the process.
//
// x must stay mapped and unchanged by this process while v is in use;
// v.Close releases nothing of x's.
func (x *Index) View() *Index {
	v := &Index{mem: x.mem, hdr: bytes.Clone(x.header()[:HeaderSize])}
	if n := x.Len(); n > 0 && n <= x.capacity() {
		v.tail = bytes.Clone(x.mem[HeaderSize+(n-1)*RecordSize:][:RecordSize])
	}
	return v
}

// viewAt is At for a view.
func (x *Index) viewAt(i int64) (r Record, err error) {
	n := x.Len()
	if i == n-1 && x.tail != nil {
		return decode(x.tail, i)
	}
	if i >= x.capacity() {
		return Record{}, fmt.Errorf("%w: record %d past the mapped %d", ErrInvalid, i, x.capacity())
	}
	x.note(i)
	var p [RecordSize]byte
	if err := readFaulting(p[:], x.mem[HeaderSize+i*RecordSize:][:RecordSize]); err != nil {
		return Record{}, fmt.Errorf("%w: record %d: %v", ErrInvalid, i, err)
	}
	r, err = decode(p[:], i) // from the copy: the bytes checked are the bytes used
	if b := int64(x.BlockSize()); err == nil && x.Uniform() && (r.Logical != i*b || int64(r.Length) != b) {
		err = fmt.Errorf("%w: record %d is no longer that of block %d of %d bytes", ErrInvalid, i, i, b)
	}
	return r, err
}

// readFaulting copies src, mapped memory whose file may have been cut
// short under the mapping, into dst; the fault that would kill the process
// (SIGBUS) is an error instead.
func readFaulting(dst, src []byte) (err error) {
	defer func() {
		if e := recover(); e != nil {
			if _, fault := e.(interface{ Addr() uintptr }); !fault {
				panic(e)
			}
			err = fmt.Errorf("the index file shrank under its mapping: %v", e)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	copy(dst, src)
	return nil
}

// put encodes record i with its checksum.
func (x *Index) put(i int64, r Record) {
	if x.hdr != nil {
		panic("blockindex: a record written through a view")
	}
	x.note(i)
	x.unsynced = true
	p := x.mem[HeaderSize+i*RecordSize:][:RecordSize]
	binary.LittleEndian.PutUint64(p[0:], uint64(r.Offset))
	binary.LittleEndian.PutUint64(p[8:], uint64(r.Logical))
	binary.LittleEndian.PutUint32(p[16:], r.Size)
	binary.LittleEndian.PutUint32(p[20:], r.Length)
	binary.LittleEndian.PutUint32(p[24:], r.Pad)
	binary.LittleEndian.PutUint32(p[28:], recordCRC(p, i))
}

// An index mapping larger than trimAbove is trimmed (trim) every trimEvery
// record reads and writes. Smaller ones (files up to about 7.5 GiB) stay
// mapped as used: a random reader of such a file would otherwise pay a
// page fault per read for memory that is bounded anyway.
const (
	trimAbove = 4 << 20
	trimEvery = 1024
)

// note counts a use of record i and, every trimEvery uses of a large
// index, trims the mapping around it.
func (x *Index) note(i int64) {
	if x.touches.Add(1)%trimEvery == 0 && len(x.mem) > trimAbove {
		x.trim(i)
	}
}

// trim hands the pages of a file-backed mapping back to the kernel, except
// the header's and record i's, so that a pass over the index of a huge
// file (a sequential read, a stream of appends) keeps a few pages in this
// process's memory, not the whole index: 32 bytes per block would
// otherwise stay resident, 9 MB for 16 GiB, 570 MB for 1 TiB. The records
// stay in the file and its page cache (a page changed through the shared
// mapping is still written back) and are mapped again at their next use, a
// minor fault. An index in anonymous memory (CreateMem) has nowhere else to
// keep its records and is left alone.
func (x *Index) trim(i int64) {
	if (x.f == nil && x.hdr == nil) || x.mem == nil {
		return
	}
	page := os.Getpagesize()
	drop := func(lo, hi int) {
		if hi > lo {
			unix.Madvise(x.mem[lo:hi], unix.MADV_DONTNEED)
		}
	}
	end := len(x.mem)
	keep := (HeaderSize + int(i)*RecordSize) / page * page
	drop(page, min(keep, end))
	drop(min(keep+page, end), end)
}

func recordCRC(p []byte, i int64) uint32 {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(i))
	return crc32.Update(crc32.ChecksumIEEE(p[:28]), crc32.IEEETable, n[:])
}

// Set writes record i; i == Len() appends. It keeps the uniform flag true
// only while every block but the last holds BlockSize bytes.
func (x *Index) Set(i int64, r Record) error {
	n := x.Len()
	if i < 0 || i > n {
		return fmt.Errorf("index record %d of %d: out of range", i, n)
	}
	if i == n {
		if err := x.Reserve(1); err != nil {
			return err
		}
	}
	x.put(i, r)
	b := int64(x.BlockSize())
	uniform := x.Uniform() && r.Logical == i*b
	if i == n {
		x.put64(24, uint64(n+1))
		if i > 0 {
			prev, err := x.At(i - 1)
			uniform = uniform && err == nil && int64(prev.Length) == b
		}
	} else if i < n-1 {
		uniform = uniform && int64(r.Length) == b
	}
	if !uniform && x.Uniform() {
		x.put32(20, x.get32(20)&^flagUnif)
	}
	x.seal()
	return nil
}

// Reserve makes room for n more records (allocating it on disk), so that
// appending them cannot fail: callers reserve before they write the data
// the records describe.
func (x *Index) Reserve(n int64) error {
	for x.capacity() < x.Len()+n {
		grow := min(max(x.capacity(), minRecords), maxGrowth)
		if err := x.remap(x.capacity() + max(grow, x.Len()+n-x.capacity())); err != nil {
			return err
		}
	}
	return nil
}

// AppendRun appends n records of equal member size and length, the first
// one r, each next one right after the one before in the backing file and
// in the logical file (a run of zero blocks): one pass, one header update.
func (x *Index) AppendRun(n int64, r Record) error {
	if n <= 0 {
		return nil
	}
	first := x.Len()
	if err := x.Reserve(n); err != nil {
		return err
	}
	b := int64(x.BlockSize())
	uniform := x.Uniform() && r.Logical == first*b && (n == 1 || int64(r.Length) == b)
	if uniform && first > 0 {
		prev, err := x.At(first - 1)
		uniform = err == nil && int64(prev.Length) == b
	}
	for i := first; i < first+n; i++ {
		x.put(i, r)
		r.Offset += int64(r.Size)
		r.Logical += int64(r.Length)
	}
	x.put64(24, uint64(first+n))
	if !uniform && x.Uniform() {
		x.put32(20, x.get32(20)&^flagUnif)
	}
	x.seal()
	return nil
}

// CheckUniform sets the uniform flag from the records themselves: true
// when block i starts at i*BlockSize and every block but the last holds
// BlockSize bytes. Set and AppendRun only ever clear the flag, so an index
// built in passes that may break it for a while (a rebuild that recorded
// the trailing EOF marker, then dropped it) calls this at the end to get
// O(1) lookups back. It reads every record: O(blocks).
func (x *Index) CheckUniform() (bool, error) {
	n := x.Len()
	b := int64(x.BlockSize())
	uniform := true
	for i := int64(0); i < n && uniform; i++ {
		r, err := x.At(i)
		if err != nil {
			return false, err
		}
		uniform = r.Logical == i*b && (int64(r.Length) == b || i == n-1 && int64(r.Length) <= b)
	}
	if uniform != x.Uniform() {
		x.put32(20, x.get32(20)^flagUnif)
		x.seal()
	}
	return uniform, nil
}

// Truncate keeps the first n records.
func (x *Index) Truncate(n int64) {
	if n < x.Len() {
		x.put64(24, uint64(n))
		x.seal()
	}
}

// Find returns the number of the block holding logical offset off, which
// must be below the logical size.
func (x *Index) Find(off int64) (int64, error) {
	n := x.Len()
	if n == 0 || off < 0 {
		return 0, fmt.Errorf("find offset %d in empty index", off)
	}
	if x.Uniform() {
		return min(off/int64(x.BlockSize()), n-1), nil
	}
	lo, hi := int64(0), n-1 // invariant: answer in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		r, err := x.At(mid)
		if err != nil {
			return 0, err
		}
		if r.Logical <= off {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo, nil
}

// ExportGZI writes the index in htslib's .gzi layout: the number of entries,
// then a (compressed offset, uncompressed offset) pair for every block but
// the first, all uint64 little-endian.
func (x *Index) ExportGZI(w io.Writer) error {
	n := x.Len()
	var buf [16]byte
	binary.LittleEndian.PutUint64(buf[:8], uint64(max(n-1, 0)))
	if _, err := w.Write(buf[:8]); err != nil {
		return fmt.Errorf("write gzi: %w", err)
	}
	for i := int64(1); i < n; i++ {
		r, err := x.At(i)
		if err != nil {
			return err
		}
		binary.LittleEndian.PutUint64(buf[:8], uint64(r.Offset))
		binary.LittleEndian.PutUint64(buf[8:], uint64(r.Logical))
		if _, err := w.Write(buf[:]); err != nil {
			return fmt.Errorf("write gzi: %w", err)
		}
	}
	return nil
}

// Sync makes the mapped index durable. One fsync of the sidecar does it:
// Linux has one page cache, and a page changed through a shared mapping is
// marked dirty at its first write (and write-protected again once written
// back), so fsync writes it like any other; an msync(MS_SYNC) first was a
// second sync of the same file (about 0.2 ms per fsync of a file).
func (x *Index) Sync() error {
	if x.f == nil { // nothing to keep: no sidecar
		return nil
	}
	if err := x.f.Sync(); err != nil {
		return fmt.Errorf("fsync index: %w", err)
	}
	x.unsynced = false
	x.dirtySynced = x.Dirty()
	return nil
}

// Unsynced reports whether the sidecar holds changes that no Sync made
// durable yet (false for an index in memory and for a view).
func (x *Index) Unsynced() bool { return x.f != nil && x.unsynced }

// FileID returns the device and inode number of the sidecar file this
// index maps, to tell whether its path still names it; false for an index
// in memory or a view (no sidecar of its own) or when fstat fails.
func (x *Index) FileID() (dev, ino uint64, ok bool) {
	if x.f == nil {
		return 0, 0, false
	}
	if x.ino == 0 {
		var st unix.Stat_t
		if unix.Fstat(int(x.f.Fd()), &st) != nil {
			return 0, 0, false
		}
		x.dev, x.ino = st.Dev, st.Ino
	}
	return x.dev, x.ino, true
}

// allocate gives f disk space for bytes [off, off+n) and makes it off+n
// long (where the filesystem cannot allocate ahead, only the latter).
func allocate(f *os.File, off, n int64) error {
	if err := unix.Fallocate(int(f.Fd()), 0, off, n); err != nil &&
		!errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	return f.Truncate(off + n)
}

// Close unmaps and closes the index.
func (x *Index) Close() error {
	if x.hdr != nil { // a view: the mapping is its index's
		owner := x.owner
		x.mem, x.hdr, x.tail, x.owner = nil, nil, nil, nil
		if owner != nil {
			return owner.Close()
		}
		return nil
	}
	var err error
	if x.mem != nil && !x.heap {
		err = unix.Munmap(x.mem)
	}
	x.mem = nil
	if x.f == nil {
		return err
	}
	if cerr := x.f.Close(); err == nil {
		err = cerr
	}
	return err
}
