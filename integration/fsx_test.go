package integration

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The file exerciser (in the spirit of fsx): a long random sequence of
// operations on one file through the real mount, checked against an
// in-memory model after every operation, and at the end on the backing file
// with gzip -dc. CI runs fsxSeeds seeds of fsxOps operations on two mount
// configurations; a longer run is one flag away:
//
//	go test ./integration -run TestFSX -args -fsx.ops=500000 -fsx.seeds=1,2,3,4,5,6,7,8
//	make fsx-long
var (
	fsxOps   = flag.Int("fsx.ops", 20000, "operations per seed of the file exerciser")
	fsxSeeds = flag.String("fsx.seeds", "1,2", "comma-separated seeds of the file exerciser (each runs on every configuration)")
)

// fsxConfig is one mount configuration of the exerciser.
type fsxConfig struct {
	name   string
	opts   []string
	maxLen int64 // the model file stays below this many bytes
}

func TestFSX(t *testing.T) {
	configs := []fsxConfig{
		{"default", nil, 2 << 20},
		{"small-blocks-noflush", []string{"blocksize=4096", "flush=0"}, 1 << 20},
	}
	var seeds []uint64
	for _, s := range strings.Split(*fsxSeeds, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil {
			t.Fatalf("-fsx.seeds: %v", err)
		}
		seeds = append(seeds, n)
	}
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			m := newMount(t, c.opts...)
			for _, seed := range seeds {
				t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
					x := newFSX(t, m, c, seed)
					x.run(*fsxOps)
				})
			}
		})
	}
}

// fsx is one exerciser run.
type fsx struct {
	t      *testing.T
	m      *mountProc
	cfg    fsxConfig
	seed   uint64
	r      *rand.Rand
	name   string // mount-relative name of the file under test
	f      *os.File
	src    *os.File // a second file: the source of copy_file_range
	srcBuf []byte
	model  []byte
	log    []string // the last operations, for the report
	step   int
}

func newFSX(t *testing.T, m *mountProc, cfg fsxConfig, seed uint64) *fsx {
	x := &fsx{t: t, m: m, cfg: cfg, seed: seed, r: rand.New(rand.NewPCG(seed, 0xf5)),
		name: fmt.Sprintf("fsx-%s-%d", cfg.name, seed)}
	var err error
	if x.f, err = os.OpenFile(m.path(x.name), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644); err != nil {
		t.Fatal(err)
	}
	x.srcBuf = x.data(512 << 10)
	mustWrite(t, m.path(x.name+".src"), x.srcBuf)
	if x.src, err = os.Open(m.path(x.name + ".src")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.f.Close(); x.src.Close() })
	return x
}

// data returns n bytes, compressible or random.
func (x *fsx) data(n int) []byte {
	b := make([]byte, n)
	if x.r.IntN(3) == 0 {
		for i := range b {
			b[i] = byte(x.r.Uint32())
		}
		return b
	}
	words := []string{"GET /index.html ", "200 ", "fsx ", "\n", "0123456789", "zzzz "}
	for i := 0; i < n; {
		i += copy(b[i:], words[x.r.IntN(len(words))])
	}
	return b
}

// fail reports a mismatch with the seed and the last operations.
func (x *fsx) fail(format string, args ...any) {
	x.t.Helper()
	x.t.Fatalf("seed %d, step %d: %s\nlast operations:\n  %s\n(rerun: go test ./integration -run 'TestFSX/%s/seed%d$' -args -fsx.seeds=%d -fsx.ops=%d)",
		x.seed, x.step, fmt.Sprintf(format, args...), strings.Join(x.log, "\n  "), x.cfg.name, x.seed, x.seed, x.step+1)
}

func (x *fsx) note(format string, args ...any) {
	x.log = append(x.log, fmt.Sprintf("%d: ", x.step)+fmt.Sprintf(format, args...))
	if len(x.log) > 20 {
		x.log = x.log[1:]
	}
}

// setLen resizes the model as a truncate does.
func (x *fsx) setLen(n int64) {
	if n <= int64(len(x.model)) {
		x.model = x.model[:n]
		return
	}
	x.model = append(x.model, make([]byte, n-int64(len(x.model)))...)
}

// put writes b into the model at off, growing it.
func (x *fsx) put(b []byte, off int64) {
	if end := off + int64(len(b)); end > int64(len(x.model)) {
		x.setLen(end)
	}
	copy(x.model[off:], b)
}

// offset returns an offset for an operation: mostly inside the file, often
// at block boundaries, sometimes past the end.
func (x *fsx) offset() int64 {
	size := int64(len(x.model))
	switch x.r.IntN(6) {
	case 0:
		return min(size+x.r.Int64N(200_000), x.cfg.maxLen-1)
	case 1: // near a block boundary of either configuration
		b := []int64{4096, 61440}[x.r.IntN(2)]
		return max(0, min((x.r.Int64N(size/b+2))*b+x.r.Int64N(9)-4, x.cfg.maxLen-1))
	}
	return x.r.Int64N(size + 1)
}

func (x *fsx) run(ops int) {
	for x.step = 0; x.step < ops; x.step++ {
		switch op := x.r.IntN(100); {
		case op < 25:
			x.write()
		case op < 40:
			x.read()
		case op < 50:
			x.truncate()
		case op < 55:
			x.mmapRead()
		case op < 60:
			x.mmapWrite()
		case op < 65:
			x.appendWrite()
		case op < 70:
			x.copyRange()
		case op < 75:
			x.fallocate()
		case op < 80:
			x.note("fsync")
			if err := x.f.Sync(); err != nil {
				x.fail("fsync: %v", err)
			}
		case op < 83:
			x.note("fdatasync")
			if err := unix.Fdatasync(int(x.f.Fd())); err != nil {
				x.fail("fdatasync: %v", err)
			}
		case op < 88:
			x.reopen()
		default:
			x.note("stat")
		}
		x.checkSize()
		if x.step%500 == 499 {
			x.checkAll("periodic")
		}
	}
	x.reopen()
	if err := x.f.Close(); err != nil {
		x.fail("final close: %v", err)
	}
	x.f, _ = os.Open(x.m.path(x.name))
	checkBacking(x.t, x.m, x.name, x.model)
}

func (x *fsx) checkSize() {
	x.t.Helper()
	st, err := x.f.Stat()
	if err != nil {
		x.fail("fstat: %v", err)
	}
	if st.Size() != int64(len(x.model)) {
		x.fail("size %d, model %d", st.Size(), len(x.model))
	}
}

// checkRange reads [off, off+n) and compares it with the model.
func (x *fsx) checkRange(off, n int64, what string) {
	x.t.Helper()
	size := int64(len(x.model))
	buf := make([]byte, n)
	got, err := x.f.ReadAt(buf, off)
	want := max(0, min(n, size-off))
	if int64(got) != want || (err != nil && int64(got) == n) {
		x.fail("%s: pread(%d, %d) = %d, %v; model has %d bytes there", what, off, n, got, err, want)
	}
	if got == 0 {
		return
	}
	if !bytes.Equal(buf[:got], x.model[off:off+int64(got)]) {
		x.fail("%s: pread(%d, %d): wrong bytes from %d", what, off, n, off+int64(firstDiff(buf[:got], x.model[off:off+int64(got)])))
	}
}

func (x *fsx) checkAll(what string) {
	x.t.Helper()
	x.checkRange(0, int64(len(x.model))+100, what+": whole file")
}

func (x *fsx) write() {
	off := x.offset()
	n := min(int64(1+x.r.IntN(100_000)), x.cfg.maxLen-off)
	b := x.data(int(n))
	x.note("pwrite %d@%d", n, off)
	if _, err := x.f.WriteAt(b, off); err != nil {
		x.fail("pwrite(%d, %d): %v", off, n, err)
	}
	x.put(b, off)
	x.checkRange(max(off-10, 0), n+20, "after pwrite")
}

func (x *fsx) read() {
	off := x.offset()
	n := int64(1 + x.r.IntN(150_000))
	x.note("pread %d@%d", n, off)
	x.checkRange(off, n, "pread")
}

func (x *fsx) truncate() {
	size := int64(len(x.model))
	var to int64
	switch x.r.IntN(5) {
	case 0:
		to = 0
	case 1: // inside a block
		to = x.r.Int64N(size + 1)
	case 2: // past the end
		to = min(size+x.r.Int64N(300_000), x.cfg.maxLen)
	case 3: // a block boundary
		b := []int64{4096, 61440}[x.r.IntN(2)]
		to = min(x.r.Int64N(x.cfg.maxLen/b+1)*b, x.cfg.maxLen)
	default:
		to = x.r.Int64N(x.cfg.maxLen)
	}
	x.note("ftruncate %d (from %d)", to, size)
	if err := x.f.Truncate(to); err != nil {
		x.fail("ftruncate(%d): %v", to, err)
	}
	x.setLen(to)
	x.checkRange(max(to-100, 0), 200, "after ftruncate")
}

// mmapRange picks a page-aligned range inside the file, or false when the
// file is empty.
func (x *fsx) mmapRange() (off, n int64, ok bool) {
	size := int64(len(x.model))
	if size == 0 {
		return 0, 0, false
	}
	page := int64(os.Getpagesize())
	off = x.r.Int64N(size) / page * page
	n = 1 + x.r.Int64N(min(size-off, 200_000))
	return off, n, true
}

func (x *fsx) mmapRead() {
	off, n, ok := x.mmapRange()
	if !ok {
		return
	}
	x.note("mmap read %d@%d", n, off)
	mem, err := unix.Mmap(int(x.f.Fd()), off, int(n), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		x.fail("mmap(%d, %d): %v", off, n, err)
	}
	defer unix.Munmap(mem)
	if !bytes.Equal(mem, x.model[off:off+n]) {
		x.fail("mmap read %d@%d: wrong bytes from %d", n, off, off+int64(firstDiff(mem, x.model[off:off+n])))
	}
}

func (x *fsx) mmapWrite() {
	off, n, ok := x.mmapRange()
	if !ok {
		return
	}
	at := x.r.Int64N(n)
	b := x.data(int(min(n-at, int64(1+x.r.IntN(20_000)))))
	x.note("mmap write %d@%d (map %d@%d) + msync", len(b), off+at, n, off)
	mem, err := unix.Mmap(int(x.f.Fd()), off, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		x.fail("mmap(%d, %d): %v", off, n, err)
	}
	copy(mem[at:], b)
	if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
		x.fail("msync: %v", err)
	}
	if err := unix.Munmap(mem); err != nil {
		x.fail("munmap: %v", err)
	}
	x.put(b, off+at)
	x.checkRange(off, n, "after mmap write")
}

func (x *fsx) appendWrite() {
	n := min(int64(1+x.r.IntN(5000)), x.cfg.maxLen-int64(len(x.model)))
	if n <= 0 {
		return
	}
	b := x.data(int(n))
	x.note("O_APPEND write %d", n)
	a, err := os.OpenFile(x.m.path(x.name), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		x.fail("open O_APPEND: %v", err)
	}
	if _, err := a.Write(b); err != nil {
		x.fail("append write: %v", err)
	}
	if err := a.Close(); err != nil {
		x.fail("close of the O_APPEND fd: %v", err)
	}
	x.model = append(x.model, b...)
	x.checkRange(max(int64(len(x.model))-n-10, 0), n+20, "after append")
}

func (x *fsx) copyRange() {
	soff := x.r.Int64N(int64(len(x.srcBuf)))
	doff := x.offset()
	n := min(int64(1+x.r.IntN(150_000)), int64(len(x.srcBuf))-soff, x.cfg.maxLen-doff)
	x.note("copy_file_range %d from src@%d to @%d", n, soff, doff)
	so, do := soff, doff
	for done := int64(0); done < n; {
		c, err := unix.CopyFileRange(int(x.src.Fd()), &so, int(x.f.Fd()), &do, int(n-done), 0)
		if err != nil || c == 0 {
			x.fail("copy_file_range: %d, %v", c, err)
		}
		done += int64(c)
	}
	x.put(x.srcBuf[soff:soff+n], doff)
	x.checkRange(max(doff-10, 0), n+20, "after copy_file_range")
}

func (x *fsx) fallocate() {
	off := x.offset()
	n := min(int64(1+x.r.IntN(200_000)), x.cfg.maxLen-off)
	size := int64(len(x.model))
	switch x.r.IntN(5) {
	case 0:
		x.note("fallocate %d@%d", n, off)
		if err := unix.Fallocate(int(x.f.Fd()), 0, off, n); err != nil {
			x.fail("fallocate(0, %d, %d): %v", off, n, err)
		}
		x.setLen(max(size, off+n))
	case 1:
		x.note("fallocate KEEP_SIZE %d@%d", n, off)
		if err := unix.Fallocate(int(x.f.Fd()), unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
			x.fail("fallocate(KEEP_SIZE, %d, %d): %v", off, n, err)
		}
	case 2:
		x.note("fallocate PUNCH_HOLE %d@%d", n, off)
		if err := unix.Fallocate(int(x.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
			x.fail("fallocate(PUNCH_HOLE, %d, %d): %v", off, n, err)
		}
		if off < size {
			clear(x.model[off:min(off+n, size)])
		}
	case 3:
		x.note("fallocate ZERO_RANGE %d@%d", n, off)
		if err := unix.Fallocate(int(x.f.Fd()), unix.FALLOC_FL_ZERO_RANGE, off, n); err != nil {
			x.fail("fallocate(ZERO_RANGE, %d, %d): %v", off, n, err)
		}
		if off < size {
			clear(x.model[off:min(off+n, size)])
		}
		x.setLen(max(size, off+n))
	default:
		x.note("fallocate COLLAPSE_RANGE %d@%d (documented EOPNOTSUPP)", n, off)
		err := unix.Fallocate(int(x.f.Fd()), unix.FALLOC_FL_COLLAPSE_RANGE, 0, 4096)
		if err != syscall.EOPNOTSUPP {
			x.fail("fallocate(COLLAPSE_RANGE) = %v, want EOPNOTSUPP", err)
		}
	}
	x.checkRange(max(off-10, 0), n+20, "after fallocate")
}

func (x *fsx) reopen() {
	x.note("close + reopen")
	if err := x.f.Close(); err != nil {
		x.fail("close: %v", err)
	}
	var err error
	if x.f, err = os.OpenFile(x.m.path(x.name), os.O_RDWR, 0); err != nil {
		x.fail("reopen: %v", err)
	}
	x.checkAll("after reopen")
}
