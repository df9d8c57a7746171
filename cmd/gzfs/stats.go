package main

import (
	"fmt"
	"io"
	"os"

	"github.com/gzfs/gzfs/blockfile"
)

const statsUsage = "stats FILE.gz..."

const statsHelp = `Show the layout of each BGZF FILE.gz: logical (uncompressed) size, stored
size, compression ratio (logical / stored), block size, number of blocks,
whether every block but the last is full (then lookups are pure arithmetic)
and the state of the seek index (valid, or rebuilt and why).

Options:
  -h, --help   show this help
`

// runStats implements 'gzfs stats'.
func runStats(args []string) int {
	c := newCommand("stats", statsUsage, statsHelp)
	ops, code, ok := c.parse(args)
	if !ok {
		return code
	}
	if len(ops) == 0 {
		return c.fail(usageErrorf("missing FILE.gz"))
	}
	status := exitOK
	for i, path := range ops {
		if i > 0 {
			fmt.Println()
		}
		if err := statsOne(os.Stdout, path); err != nil {
			c.warn("%s: %v", path, err)
			status = exitFail
		}
	}
	return status
}

// statsOne prints the stats of one file.
func statsOne(w io.Writer, path string) error {
	f, closeFn, err := openBGZF("stats", path)
	if err != nil {
		return err
	}
	st := f.Stats()
	if err := closeFn(); err != nil {
		return err
	}
	writeStats(w, path, st)
	if fi, err := os.Stat(path); err == nil && fi.Size() > st.StoredSize {
		fmt.Fprintf(w, "  unreadable    %d bytes after the last whole block (see 'gzfs fsck')\n", fi.Size()-st.StoredSize)
	}
	return nil
}

// writeStats formats st.
func writeStats(w io.Writer, path string, st blockfile.Stats) {
	ratio := "-"
	if st.StoredSize > 0 && st.Size > 0 {
		ratio = fmt.Sprintf("%.2fx (stored is %.1f%% of logical)",
			float64(st.Size)/float64(st.StoredSize), 100*float64(st.StoredSize)/float64(st.Size))
	}
	fmt.Fprintf(w, "%s\n", path)
	fmt.Fprintf(w, "  logical size  %d (%s)\n", st.Size, human(st.Size))
	fmt.Fprintf(w, "  stored size   %d (%s)\n", st.StoredSize, human(st.StoredSize))
	fmt.Fprintf(w, "  ratio         %s\n", ratio)
	fmt.Fprintf(w, "  block size    %d\n", st.BlockSize)
	fmt.Fprintf(w, "  blocks        %d\n", st.Blocks)
	fmt.Fprintf(w, "  uniform       %s\n", yesNo(st.Uniform))
	fmt.Fprintf(w, "  index         %s\n", st.IndexState)
}

// human formats a byte count with a binary unit.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// yesNo formats a boolean for people.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
