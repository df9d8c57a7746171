package main

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/gzfs/gzfs/blockfile"
	"github.com/gzfs/gzfs/gzindex"
)

const indexUsage = "index [--gzi | --gzidx] [--span N] [-q] FILE.gz"

const indexHelp = `Build the random-access index of FILE.gz.

Any gzip file (gzip, pigz, log rotation...): build its checkpoint index in
the sidecar store (.gzfs beside it or in a parent directory), so that
'gzfs cat --offset' and a gzfs mount read any range of it by inflating at
most one span instead of the file from its start. The index is rebuilt when
the file changes. A mount builds it by itself in the background at the
first open; this command does it ahead, with a progress bar.

A BGZF file needs no checkpoint index (its blocks are its index);
--gzi exports its seek index in htslib's .gzi layout to FILE.gz.gzi, for
'bgzip -b OFFSET -s LENGTH FILE.gz' and 'bgzip -r'-style tools. An existing
FILE.gz.gzi is replaced (atomically: temporary file, fsync, rename).

--gzidx also writes the checkpoint index of a plain gzip file to
FILE.gz.gzidx in the layout of Python's indexed_gzip (its import_index):
  f = indexed_gzip.IndexedGzipFile("FILE.gz"); f.import_index("FILE.gz.gzidx")
skips its single-threaded build (the windows are stored uncompressed there:
32 KiB per checkpoint).

Options:
  --gzi        BGZF: write FILE.gz.gzi
  --gzidx      gzip: also write FILE.gz.gzidx (indexed_gzip)
  --span N     gzip: uncompressed bytes between checkpoints (suffix K, M;
               default 4M: a random read inflates at most that much; the
               index takes about 1 % of the file on logs)
  -q, --quiet  no progress bar
  -h, --help   show this help
`

// runIndex implements 'gzfs index'.
func runIndex(args []string) int {
	c := newCommand("index", indexUsage, indexHelp)
	var gzi, gzidx, quiet bool
	var span int64
	c.boolFlag(&gzi, "gzi")
	c.boolFlag(&gzidx, "gzidx")
	c.boolFlag(&quiet, "q", "quiet")
	c.sizeFlag(&span, "span")
	ops, code, ok := c.parse(args)
	if !ok {
		return code
	}
	switch {
	case len(ops) == 0:
		return c.fail(usageErrorf("missing FILE.gz"))
	case len(ops) > 1:
		return c.fail(usageErrorf("too many operands"))
	case span < 0 || span > 0 && span < gzindex.WindowSize:
		return c.fail(usageErrorf("--span must be at least %d", gzindex.WindowSize))
	case gzi && gzidx:
		return c.fail(usageErrorf("--gzi (BGZF) and --gzidx (plain gzip) exclude each other"))
	}
	bgzfFile, err := sniffBGZF(ops[0])
	if err != nil {
		return c.fail(err)
	}
	switch {
	case bgzfFile && gzi:
		err = exportGZI(ops[0])
	case bgzfFile && gzidx:
		err = fmt.Errorf("%s is BGZF: --gzidx is for plain gzip files (use --gzi for htslib)", ops[0])
	case bgzfFile:
		err = fmt.Errorf("%s is BGZF: its blocks are its index (use --gzi to export it for htslib)", ops[0])
	case gzi:
		err = fmt.Errorf("%s is not BGZF: --gzi needs a BGZF file ('gzfs pack' makes one)", ops[0])
	default:
		err = buildCheckpoints(ops[0], span, quiet, gzidx)
	}
	if err != nil {
		return c.fail(err)
	}
	return exitOK
}

// buildCheckpoints builds the checkpoint index of the gzip file at path.
func buildCheckpoints(path string, span int64, quiet, gzidx bool) error {
	raw, err := openPlainGzip(path)
	if err != nil {
		return err
	}
	st, err := raw.Stat()
	if err != nil {
		raw.Close()
		return err
	}
	store, err := blockfile.FindStore(path)
	if err != nil {
		raw.Close()
		return err
	}
	x, err := blockfile.OpenForeign(raw, path, store, engineLogger("index", false))
	if err != nil {
		return err
	}
	defer x.Close()
	if span == 0 {
		span = gzindex.DefaultSpan
	}
	if !x.Indexed() || x.Stats().Span != span {
		bar := newProgress("index", st.Size(), quiet)
		err := x.Rebuild(span, func(in, out int64) { bar.set(in) })
		bar.done()
		if err != nil {
			return err
		}
	}
	s := x.Stats()
	if s.Damaged >= 0 {
		return fmt.Errorf("%s: %w: the data stops decoding at compressed offset %d; the index covers the %d bytes before it",
			path, blockfile.ErrCorrupt, s.Damaged, s.Logical)
	}
	if gzidx {
		return replaceFile(path+".gzidx", outputPerm(path), x.ExportGZIDX)
	}
	return nil
}

// replaceFile writes dst with write through a temporary file (fsynced,
// renamed into place).
func replaceFile(dst string, perm os.FileMode, write func(io.Writer) error) error {
	tmp, release, err := tempName(dst)
	if err != nil {
		return err
	}
	defer release()
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_TRUNC, 0)
	if err == nil {
		err = write(out)
		if err == nil {
			err = out.Sync()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err := commitRename(tmp, dst, perm, true); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// exportGZI writes path+".gzi" from the engine's index of path.
func exportGZI(path string) error {
	f, closeFn, err := openBGZF("index", path)
	if err != nil {
		return err
	}
	err = replaceFile(path+".gzi", outputPerm(path), func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		if err := f.ExportGZI(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
	if cerr := closeFn(); err == nil {
		err = cerr
	}
	return err
}
