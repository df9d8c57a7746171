package main

import (
	"bufio"
	"fmt"
	"os"

	"github.com/gzfs/gzfs/blockfile"
)

const indexUsage = "index --gzi FILE.gz"

const indexHelp = `Export the seek index of the BGZF FILE.gz in htslib's .gzi layout to
FILE.gz.gzi, for 'bgzip -b OFFSET -s LENGTH FILE.gz' and 'bgzip -r'-style
tools. An existing FILE.gz.gzi is replaced (atomically: temporary file,
fsync, rename).

Options:
  --gzi        write FILE.gz.gzi (required: the only export format so far)
  -h, --help   show this help
`

// runIndex implements 'gzfs index'.
func runIndex(args []string) int {
	c := newCommand("index", indexUsage, indexHelp)
	var gzi bool
	c.boolFlag(&gzi, "gzi")
	ops, code, ok := c.parse(args)
	if !ok {
		return code
	}
	switch {
	case !gzi:
		return c.fail(usageErrorf("missing --gzi (the export format)"))
	case len(ops) == 0:
		return c.fail(usageErrorf("missing FILE.gz"))
	case len(ops) > 1:
		return c.fail(usageErrorf("too many operands"))
	}
	if err := exportGZI(ops[0]); err != nil {
		return c.fail(err)
	}
	return exitOK
}

// exportGZI writes path+".gzi" from the engine's index of path.
func exportGZI(path string) error {
	f, closeFn, err := openBGZF("index", path)
	if err != nil {
		return err
	}
	err = replaceGZI(path+".gzi", f, outputPerm(path))
	if cerr := closeFn(); err == nil {
		err = cerr
	}
	return err
}

// replaceGZI writes the .gzi of f to dst through a temporary file.
func replaceGZI(dst string, f *blockfile.File, perm os.FileMode) error {
	tmp, release, err := tempName(dst)
	if err != nil {
		return err
	}
	defer release()
	if err := writeGZI(tmp, f); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err := commitRename(tmp, dst, perm, true); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// writeGZI writes the .gzi of f to the existing file at path and fsyncs it.
func writeGZI(path string, f *blockfile.File) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(out)
	err = f.ExportGZI(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}
