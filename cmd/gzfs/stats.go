package main

import (
	"errors"
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
			c.warnFile(path, err)
			status = exitFail
		}
	}
	return status
}

// statsOne prints the stats of one file.
func statsOne(w io.Writer, path string) error {
	if ok, err := sniffBGZF(path); err == nil && !ok {
		return foreignStats(w, path)
	}
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

// foreignStats prints what gzfs knows of a gzip file that is not BGZF: its
// sizes and the state of its checkpoint index (nothing is built or written).
func foreignStats(w io.Writer, path string) error {
	raw, err := openPlainGzip(path)
	if errors.Is(err, errNotGzip) {
		return errNotGzip // the caller names the file
	}
	if err != nil {
		return err
	}
	store, _ := blockfile.LookupStore(path) // nil: no store, so no index
	x, err := blockfile.OpenForeign(raw, path, store, engineLogger("stats", false))
	if err != nil {
		return err
	}
	defer x.Close()
	s := x.Stats()
	fmt.Fprintf(w, "%s\n", path)
	fmt.Fprintf(w, "  format        gzip, not BGZF (read-only in a mount unless converted: 'gzfs pack')\n")
	if s.Logical >= 0 {
		fmt.Fprintf(w, "  logical size  %d (%s)\n", s.Logical, human(s.Logical))
	} else {
		size, _ := x.Size()
		fmt.Fprintf(w, "  logical size  unknown without the index (ISIZE trailer: %d)\n", size)
	}
	fmt.Fprintf(w, "  stored size   %d (%s)\n", s.Stored, human(s.Stored))
	if s.Logical > 0 && s.Stored > 0 {
		fmt.Fprintf(w, "  ratio         %.2fx\n", float64(s.Logical)/float64(s.Stored))
	}
	fmt.Fprintf(w, "  index         checkpoint index: %s\n", s.IndexState)
	if s.Checkpoints > 0 {
		fmt.Fprintf(w, "  checkpoints   %d, every %s; index %d bytes (%.2f%% of the file)\n",
			s.Checkpoints, human(s.Span), s.IndexBytes, 100*float64(s.IndexBytes)/float64(max(s.Stored, 1)))
	}
	if s.Damaged >= 0 {
		fmt.Fprintf(w, "  damaged       data stops decoding at compressed offset %d\n", s.Damaged)
	}
	return nil
}
