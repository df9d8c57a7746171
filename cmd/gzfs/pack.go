package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gzfs/gzfs/blockfile"
	"golang.org/x/term"
)

const packUsage = "pack [-l LEVEL] [-b BLOCKSIZE] [-p THREADS] [-f] [-q] SRC [DST] | pack --in-place FILE.gz"

const packHelp = `Compress SRC into DST, a block-gzip (BGZF) file that gzip, zcat and bgzip read
and that gzfs reads and writes at any offset. DST defaults to SRC.gz; SRC "-"
reads stdin (DST then defaults to stdout), DST "-" writes stdout.

DST appears only when it is complete: gzfs writes a temporary file next to it,
fsyncs it and renames it, so an error or Ctrl-C never leaves a half-written
DST. With DST "-" the temporary file is made in $TMPDIR and then copied to
stdout, so $TMPDIR needs room for the compressed output.

--in-place FILE.gz converts a plain gzip file (gzip, pigz: read-only in a
mount) to BGZF under the same name: decompressed into a temporary file
beside it, fsynced, renamed over it (a crash leaves the original or the
complete converted file). A BGZF file is left as it is.

Options:
  --in-place              convert FILE.gz to BGZF under its own name
  -l, --level LEVEL       deflate level 1 (fastest) .. 9 (smallest); default 6
  -1 .. -9                same as -l 1 .. -l 9, as in gzip
  -b, --block-size SIZE   uncompressed bytes per block, 4096..65280 (suffix K
                          allowed, e.g. 32K); default 61440
  -p, --threads N         compress up to N blocks at once; default: all CPUs
  -f, --force             overwrite DST if it exists; write to a terminal
  -q, --quiet             no progress bar
  -h, --help              show this help
`

// packOptions are the parsed options of 'gzfs pack'.
type packOptions struct {
	level, threads        int
	blockSize             int64
	force, quiet, inPlace bool
}

// runPack implements 'gzfs pack'.
func runPack(args []string) int {
	c := newCommand("pack", packUsage, packHelp)
	o := packOptions{level: blockfile.DefaultLevel, blockSize: blockfile.DefaultBlockSize}
	c.intFlag(&o.level, "l", "level")
	for l := 1; l <= 9; l++ {
		c.flags.BoolFunc(strconv.Itoa(l), "", func(string) error { o.level = l; return nil })
	}
	c.sizeFlag(&o.blockSize, "b", "block-size")
	c.intFlag(&o.threads, "p", "threads")
	c.boolFlag(&o.force, "f", "force")
	c.boolFlag(&o.quiet, "q", "quiet")
	c.boolFlag(&o.inPlace, "in-place")
	ops, code, ok := c.parse(args)
	if !ok {
		return code
	}
	if err := o.check(ops); err != nil {
		return c.fail(err)
	}
	if o.inPlace {
		if len(ops) != 1 || ops[0] == stdio {
			return c.fail(usageErrorf("--in-place takes one FILE.gz"))
		}
		if err := convertInPlace(ops[0], o); err != nil {
			return c.fail(err)
		}
		return exitOK
	}
	src, dst := ops[0], ""
	if len(ops) == 2 {
		dst = ops[1]
	} else if src == stdio {
		dst = stdio
	} else {
		dst = src + ".gz"
	}
	if err := pack(src, dst, o); err != nil {
		return c.fail(err)
	}
	return exitOK
}

// check validates the options and the number of operands.
func (o *packOptions) check(ops []string) error {
	switch {
	case len(ops) == 0:
		return usageErrorf("missing SRC")
	case len(ops) > 2:
		return usageErrorf("too many operands")
	case o.level < 1 || o.level > 9:
		return badValuef("level %d out of range 1..9", o.level)
	case o.blockSize < blockfile.MinBlockSize || o.blockSize > blockfile.MaxBlockSize:
		return badValuef("block size %d out of range %d..%d",
			o.blockSize, blockfile.MinBlockSize, blockfile.MaxBlockSize)
	case o.threads < 0:
		return badValuef("threads %d must be >= 0", o.threads)
	}
	return nil
}

// pack compresses src into dst (see packHelp).
func pack(src, dst string, o packOptions) error {
	if dst == stdio && !o.force && term.IsTerminal(int(os.Stdout.Fd())) {
		return errors.New("compressed data not written to a terminal (use -f to force)")
	}
	if err := checkNoClobber(dst, o.force); err != nil {
		return err
	}
	in, size, err := openInput(src)
	if err != nil {
		return err
	}
	defer in.Close()

	out, release, err := newPackOutput(dst)
	if err != nil {
		return err
	}
	defer release()
	f, err := blockfile.Create(out.tmp, 0o600, blockfile.Options{
		Level:     o.level,
		BlockSize: int(o.blockSize),
		Workers:   o.threads,
		Store:     out.store,
		Logger:    engineLogger("pack", false),
	})
	if err != nil {
		out.abort()
		return fmt.Errorf("create %s: %w", out.tmp, err)
	}
	bar := newProgress("pack", size, o.quiet)
	n, err := copyToEngine(f, in, chunkSize(int(o.blockSize)), bar)
	bar.done()
	if err == nil && f.Size() != n {
		err = fmt.Errorf("engine holds %d bytes, %d were written", f.Size(), n)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err != nil {
		out.abort()
		return fmt.Errorf("%s -> %s: %w", src, dst, err)
	}
	if err := out.commit(outputPerm(src), o.force); err != nil {
		out.abort()
		return err
	}
	return nil
}

// openInput opens src ("-": stdin) and returns its size when known (else -1).
func openInput(src string) (io.ReadCloser, int64, error) {
	if src == stdio {
		return io.NopCloser(os.Stdin), -1, nil
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("stat %s: %w", src, err)
	}
	if st.IsDir() {
		f.Close()
		return nil, 0, fmt.Errorf("%s is a directory", src)
	}
	size := int64(-1)
	if st.Mode().IsRegular() {
		size = st.Size()
	}
	return f, size, nil
}

// chunkSize is the size of the WriteAt calls of pack: a whole number of
// blocks, large enough that the engine compresses many of them in parallel.
func chunkSize(blockSize int) int {
	const target = 8 << 20
	return max(1, target/blockSize) * blockSize
}

// copyToEngine writes everything read from r to f sequentially in chunks of
// size bytes. Reading runs ahead of compression by one chunk.
func copyToEngine(f *blockfile.File, r io.Reader, size int, bar *progress) (int64, error) {
	type chunk struct {
		buf []byte
		n   int
		err error
	}
	free := make(chan []byte, 2)
	full := make(chan chunk, 2)
	free <- make([]byte, size)
	free <- make([]byte, size)
	go func() {
		defer close(full)
		for buf := range free {
			n, err := io.ReadFull(r, buf)
			full <- chunk{buf, n, err}
			if err != nil {
				return
			}
		}
	}()
	defer close(free)
	var off int64
	for c := range full {
		if c.n > 0 {
			if _, err := f.WriteAt(c.buf[:c.n], off); err != nil {
				return off, fmt.Errorf("write: %w", err)
			}
			off += int64(c.n)
			bar.add(int64(c.n))
		}
		switch {
		case c.err == io.EOF || c.err == io.ErrUnexpectedEOF:
			return off, nil
		case c.err != nil:
			return off, fmt.Errorf("read: %w", c.err)
		}
		free <- c.buf
	}
	return off, nil
}

// packOutput is where pack writes: a temporary file that becomes dst by a
// rename, or that is copied to stdout.
type packOutput struct {
	dst, tmp string
	tmpDir   string           // private directory to remove (stdout only)
	store    *blockfile.Store // where the engine keeps the index of tmp
}

// newPackOutput reserves the temporary file for dst. Until release is
// called, an interrupt runs abort.
func newPackOutput(dst string) (o *packOutput, release func(), err error) {
	release, err = guardCreate(func() (func(), error) {
		var err error
		if dst == stdio {
			o, err = newStdoutOutput()
		} else {
			o, err = newFileOutput(dst)
		}
		if err != nil {
			return nil, err
		}
		return o.abort, nil
	})
	return o, release, err
}

// newStdoutOutput makes a private directory for the temporary file and its
// sidecar store.
func newStdoutOutput() (*packOutput, error) {
	dir, err := os.MkdirTemp("", "gzfs-pack-*")
	if err != nil {
		return nil, fmt.Errorf("create temporary directory: %w", err)
	}
	st, err := blockfile.OpenStore(filepath.Join(dir, blockfile.StoreDirName))
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("open index store: %w", err)
	}
	return &packOutput{dst: stdio, tmp: filepath.Join(dir, "out.gz"), tmpDir: dir, store: st}, nil
}

// newFileOutput makes the temporary file next to dst.
func newFileOutput(dst string) (*packOutput, error) {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".gzfs-tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create temporary file: %w", err)
	}
	tmp := f.Name()
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("create temporary file: %w", err)
	}
	st, err := blockfile.FindStore(tmp)
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("open index store for %s: %w", dst, err)
	}
	return &packOutput{dst: dst, tmp: tmp, store: st}, nil
}

// abort removes the temporary file and its sidecars. It is safe to call more
// than once and after commit (the temporary name is gone by then).
func (o *packOutput) abort() {
	if o.tmpDir != "" {
		os.RemoveAll(o.tmpDir)
		return
	}
	if ino, _ := inodeOf(o.tmp); ino != 0 {
		o.store.Forget(ino)
		os.Remove(o.tmp)
	}
}

// commit moves the complete temporary file into place (or copies it to
// stdout) with mode perm. It replaces an existing dst only when force is set.
func (o *packOutput) commit(perm os.FileMode, force bool) error {
	if o.dst == stdio {
		defer os.RemoveAll(o.tmpDir)
		f, err := os.Open(o.tmp)
		if err != nil {
			return fmt.Errorf("reopen %s: %w", o.tmp, err)
		}
		defer f.Close()
		if _, err := io.Copy(os.Stdout, f); err != nil {
			return fmt.Errorf("write stdout: %w", err)
		}
		return nil
	}
	oldIno, oldLinks := inodeOf(o.dst)
	if err := commitRename(o.tmp, o.dst, perm, force); err != nil {
		return err
	}
	if oldIno != 0 && oldLinks == 1 {
		o.store.Forget(oldIno) // the replaced file is gone: drop its index
	}
	return nil
}

// convertInPlace converts the plain gzip file at path to BGZF under the
// same name (see packHelp).
func convertInPlace(path string, o packOptions) error {
	if isBGZF, err := sniffBGZF(path); err != nil || isBGZF {
		return err // already BGZF: nothing to do
	}
	src, err := openPlainGzip(path)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	out, release, err := newPackOutput(path)
	if err != nil {
		return err
	}
	defer release()
	tmp, err := os.OpenFile(out.tmp, os.O_RDWR, 0)
	if err != nil {
		out.abort()
		return err
	}
	bar := newProgress("convert", st.Size(), o.quiet)
	counted := &countingReader{r: src, bar: &bar}
	_, err = blockfile.ConvertGzip(counted, tmp, path, blockfile.Options{
		Level: o.level, BlockSize: int(o.blockSize), Workers: o.threads, Store: out.store,
		Logger: engineLogger("pack", false),
	})
	bar.done()
	if err != nil {
		out.abort()
		return err // names path (the engine's name for the temporary file)
	}
	if err := out.commit(st.Mode().Perm(), true); err != nil {
		out.abort()
		return err
	}
	return nil
}
