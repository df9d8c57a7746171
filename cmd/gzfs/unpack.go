package main

import (
	"fmt"
	"os"
	"strings"
)

const unpackUsage = "unpack [-f] [-q] FILE.gz [DST]"

const unpackHelp = `Decompress FILE.gz into DST. DST defaults to FILE.gz without ".gz"; FILE.gz "-"
reads stdin (DST then defaults to stdout), DST "-" writes stdout.

A BGZF file (made by gzfs or bgzip) is read through the gzfs engine, which
inflates several blocks at once; any other gzip file (gzip, pigz, multi-member)
is decompressed as a stream. DST appears only when complete (temporary file
next to it, fsync, rename).

Options:
  -f, --force   overwrite DST if it exists
  -q, --quiet   no progress bar
  -h, --help    show this help
`

// unpackChunk is the size of the engine reads of unpack: many blocks per
// request, so that they inflate in parallel.
const unpackChunk = 4 << 20

// runUnpack implements 'gzfs unpack'.
func runUnpack(args []string) int {
	c := newCommand("unpack", unpackUsage, unpackHelp)
	var force, quiet bool
	c.boolFlag(&force, "f", "force")
	c.boolFlag(&quiet, "q", "quiet")
	ops, code, ok := c.parse(args)
	if !ok {
		return code
	}
	switch {
	case len(ops) == 0:
		return c.fail(usageErrorf("missing FILE.gz"))
	case len(ops) > 2:
		return c.fail(usageErrorf("too many operands"))
	}
	src, dst := ops[0], ""
	switch {
	case len(ops) == 2:
		dst = ops[1]
	case src == stdio:
		dst = stdio
	case strings.HasSuffix(src, ".gz") && len(src) > len(".gz"):
		dst = strings.TrimSuffix(src, ".gz")
	default:
		return c.fail(usageErrorf("%s does not end in .gz: give DST", src))
	}
	if err := unpack(src, dst, force, quiet); err != nil {
		return c.fail(err)
	}
	return exitOK
}

// unpack decompresses src into dst (see unpackHelp).
func unpack(src, dst string, force, quiet bool) error {
	if err := checkNoClobber(dst, force); err != nil {
		return err
	}
	in, err := openSource("unpack", src)
	if err != nil {
		return err
	}
	defer in.close()
	in.bar = newProgress("unpack", in.progressTotal(), quiet)
	defer in.bar.done()

	if dst == stdio {
		growPipe(os.Stdout, unpackChunk)
		_, err := in.copyRange(os.Stdout, 0, -1, unpackChunk)
		return err
	}
	tmp, release, err := tempName(dst)
	if err != nil {
		return err
	}
	defer release()
	if err := writeFileFrom(tmp, in); err != nil {
		os.Remove(tmp)
		if !strings.Contains(err.Error(), src) { // a read error names src already
			err = fmt.Errorf("%s: %w", dst, err)
		}
		return err
	}
	if err := commitRename(tmp, dst, outputPerm(src), force); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// writeFileFrom writes all of in to the (existing, empty) file at path and
// fsyncs it.
func writeFileFrom(path string, in *source) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = in.copyRange(out, 0, -1, unpackChunk)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}
