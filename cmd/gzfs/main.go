// Command gzfs mounts a directory whose regular files are stored as
// block-gzip (BGZF) files, and works on such files offline.
package main

import (
	"fmt"
	"os"
)

const usage = `gzfs: a FUSE filesystem that stores every file gzip-compressed

Usage:
  gzfs mount [-f] [-o OPTIONS] BACKING MNT   mount BACKING at MNT
  gzfs pack [-l LEVEL] [-b BLOCKSIZE] [-p THREADS] [-f] [-q] SRC [DST]
  gzfs pack --in-place FILE.gz
  gzfs unpack [-f] [-q] FILE.gz [DST]
  gzfs cat [--offset N] [--length N] FILE.gz
  gzfs fsck [--repair] [-q] FILE.gz...
  gzfs stats FILE.gz...
  gzfs index [--gzi | --gzidx] [--span N] [-q] FILE.gz

Run 'gzfs COMMAND --help' for the options of a command.
`

// commands maps a subcommand name to its entry point; each returns the exit code.
var commands = map[string]func(args []string) int{
	"mount":  runMount,
	"pack":   runPack,
	"unpack": runUnpack,
	"cat":    runCat,
	"fsck":   runFsck,
	"stats":  runStats,
	"index":  runIndex,
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	name := os.Args[1]
	if name == "-h" || name == "--help" || name == "help" {
		fmt.Print(usage)
		return
	}
	run, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "gzfs: unknown command %q (try 'gzfs --help')\n", name)
		os.Exit(2)
	}
	os.Exit(run(os.Args[2:]))
}
