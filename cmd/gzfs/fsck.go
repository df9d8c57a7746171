package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gzfs/gzfs/bgzf"
	"github.com/gzfs/gzfs/blockfile"
)

const fsckUsage = "fsck [--repair] [-q] FILE.gz..."

const fsckHelp = `Verify every block of each FILE.gz: inflate it and check its CRC32 and length.
Each damaged block is printed with its number, where its member starts in the
file and which uncompressed bytes it held; the other blocks stay readable.
A gzip file that is not BGZF is checked as a stream, like 'gzip -t'.

Exit status: 0 when every file is intact, 1 when anything is damaged or could
not be checked, 2 for a bad command line.

Options:
  --repair      first open the file read-write, which replays a pending
                write journal (an interrupted in-place rewrite) and cuts
                what follows the last whole block when it is less than one
                block and not a whole gzip header (an interrupted write,
                trailing bytes; the mount leaves such a file alone and
                reads it as gzip), then drop
                and rebuild the seek index from the member headers. Damaged
                blocks cannot be repaired: their data is lost.
  -q, --quiet   print only problems; no progress bar
  -h, --help    show this help
`

// runFsck implements 'gzfs fsck'.
func runFsck(args []string) int {
	c := newCommand("fsck", fsckUsage, fsckHelp)
	var repair, quiet bool
	c.boolFlag(&repair, "repair")
	c.boolFlag(&quiet, "q", "quiet")
	ops, code, ok := c.parse(args)
	if !ok {
		return code
	}
	if len(ops) == 0 {
		return c.fail(usageErrorf("missing FILE.gz"))
	}
	status := exitOK
	for _, path := range ops {
		err := fsckOne(path, repair, quiet)
		if err != nil && !errors.Is(err, errDamaged) {
			c.warnFile(path, err)
		}
		if err != nil {
			status = exitFail
		}
	}
	return status
}

// errDamaged is returned by fsckOne when blocks are damaged (already printed).
var errDamaged = errors.New("damaged")

// fsckOne checks (and with repair, first repairs) one file.
func fsckOne(path string, repair, quiet bool) error {
	if repair {
		if err := repairIndex(path, quiet); err != nil {
			return err
		}
	}
	in, err := openSource("fsck", path)
	if err != nil {
		return err
	}
	defer in.close()
	if in.file == nil {
		in.bar = newProgress("fsck", in.progressTotal(), quiet)
		_, err := io.Copy(io.Discard, in.stream)
		in.bar.done()
		if err != nil {
			return fmt.Errorf("not BGZF; as a gzip stream: %w", err)
		}
		if !quiet {
			fmt.Printf("%s: ok (gzip, not BGZF: no random access)\n", path)
		}
		return nil
	}
	st := in.file.Stats()
	bar := newProgress("fsck", st.StoredSize, quiet)
	bad, err := in.file.Check(func(e *blockfile.BlockError) {
		fmt.Println(e.Error())
	}, bar.set)
	bar.done()
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if in.torn > 0 {
		fmt.Println(in.tornError())
	}
	if bad > 0 || in.torn > 0 {
		tail := ""
		if in.tailCuttable() {
			tail = ", incomplete tail"
		} else if in.torn > 0 {
			tail = ", unreadable tail"
		}
		fmt.Printf("%s: %d of %d blocks damaged%s\n", path, bad, st.Blocks, tail)
		return errDamaged
	}
	note := ""
	if !endsWithEOFMarker(path, st.StoredSize) {
		// gzfs always ends a file with the marker (bgzip -d warns too):
		// the file may have been cut at a block boundary.
		note = "; no BGZF end-of-file marker: cut short at a block boundary?"
	}
	if !quiet || note != "" {
		fmt.Printf("%s: ok (%d blocks, %d bytes, index %s%s)\n", path, st.Blocks, st.Size, st.IndexState, note)
	}
	return nil
}

// endsWithEOFMarker reports whether the stored bytes of path (the first
// stored of them) end with the BGZF EOF marker; an empty file counts as
// ending with it.
func endsWithEOFMarker(path string, stored int64) bool {
	if stored == 0 {
		return true
	}
	if stored < int64(len(bgzf.EOFMember)) {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return true // the check above read it; nothing more to say
	}
	defer f.Close()
	tail := make([]byte, len(bgzf.EOFMember))
	if _, err := f.ReadAt(tail, stored-int64(len(tail))); err != nil {
		return true
	}
	return bytes.Equal(tail, bgzf.EOFMember)
}

// repairIndex opens path read-write, which replays a pending journal and
// cuts an incomplete last member, then removes its seek index so that the
// next open rebuilds it from the member headers (a copy of a cut tail
// stays in the sidecar store).
//
// The engine cuts everything after the last member it can walk to; when
// that is more than one member could be (a damaged header in the middle,
// not a torn write), repairIndex refuses rather than lose the members after
// it. The engine has no call to force an index rebuild, so this goes
// through the store (the journal is already retired by the read-write
// open).
func repairIndex(path string, quiet bool) error {
	if ok, err := sniffBGZF(path); err != nil || !ok {
		return nil // fsck reports it, or checks it as a gzip stream
	}
	_, closeFn, err := openFile("fsck", path, false, true)
	if err != nil {
		if errors.Is(err, blockfile.ErrNotBGZF) {
			return nil // nothing to repair: checked as a stream
		}
		return fmt.Errorf("open for repair: %w", err)
	}
	if err := closeFn(); err != nil {
		return err
	}
	ino, _ := inodeOf(path)
	store, cleanup, err := openStore(path)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := store.DropIndex(ino); err != nil {
		return fmt.Errorf("drop index: %w", err)
	}
	if !quiet {
		fmt.Printf("%s: journal replayed if any; index dropped, rebuilding\n", path)
	}
	return nil
}
