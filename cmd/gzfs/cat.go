package main

import (
	"os"
)

const catUsage = "cat [--offset N] [--length N] FILE.gz"

const catHelp = `Write the uncompressed bytes of FILE.gz (or a range of them) to stdout.

A BGZF file is read at random: only the blocks that hold the range are read
and inflated, 1 MiB of output at a time. Any other gzip file (or "-", stdin)
is decompressed from the start and the bytes before the offset skipped.
A range past the end of the file gives fewer bytes (or none), not an error.

Options:
  --offset N   first uncompressed byte to write (suffix K, M, G allowed); default 0
  --length N   number of bytes to write; default: up to the end
  -h, --help   show this help
`

// catChunk is the output granularity of 'gzfs cat'.
const catChunk = 1 << 20

// runCat implements 'gzfs cat'.
func runCat(args []string) int {
	c := newCommand("cat", catUsage, catHelp)
	var off int64
	length := int64(-1)
	c.sizeFlag(&off, "offset")
	c.sizeFlag(&length, "length")
	ops, code, ok := c.parse(args)
	if !ok {
		return code
	}
	switch {
	case len(ops) == 0:
		return c.fail(usageErrorf("missing FILE.gz"))
	case len(ops) > 1:
		return c.fail(usageErrorf("too many operands"))
	}
	in, err := openSource("cat", ops[0])
	if err != nil {
		return c.fail(err)
	}
	defer in.close()
	growPipe(os.Stdout, catChunk)
	if _, err := in.copyRange(os.Stdout, off, length, catChunk); err != nil {
		return c.fail(err)
	}
	return exitOK
}
