package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/gzfs/gzfs/blockfile"
	"golang.org/x/sys/unix"
)

// stdio is the operand that means stdin (input) or stdout (output).
const stdio = "-"

// ioChunk is the size of the reads and writes of the streaming commands.
const ioChunk = 1 << 20

// checkNoClobber refuses to replace an existing dst unless force is set.
func checkNoClobber(dst string, force bool) error {
	if dst == stdio || force {
		return nil
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%s already exists (use -f to overwrite)", dst)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("check destination: %w", err)
	}
	return nil
}

// tempName reserves a new, unique file name next to dst (same directory, so
// that the final rename is atomic) and returns it. The file exists, empty,
// with mode 0600; it is removed if the process is interrupted before release
// is called.
func tempName(dst string) (name string, release func(), err error) {
	release, err = guardCreate(func() (func(), error) {
		f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".gzfs-tmp-*")
		if err != nil {
			return nil, fmt.Errorf("create temporary file: %w", err)
		}
		name = f.Name()
		if err := f.Close(); err != nil {
			os.Remove(name)
			return nil, fmt.Errorf("create temporary file: %w", err)
		}
		return func() { os.Remove(name) }, nil
	})
	return name, release, err
}

// commitRename renames the complete, synced file tmp to dst with mode perm
// and syncs the directory so that the rename itself is durable. Unless
// replace is set, an existing dst (even one created since checkNoClobber) is
// never replaced.
func commitRename(tmp, dst string, perm fs.FileMode, replace bool) error {
	if err := os.Chmod(tmp, perm); err != nil {
		return fmt.Errorf("set mode of %s: %w", dst, err)
	}
	if err := rename(tmp, dst, replace); err != nil {
		return fmt.Errorf("rename to %s: %w", dst, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("sync directory of %s: %w", dst, err)
	}
	return nil
}

// rename renames oldpath to newpath, atomically refusing to replace an
// existing newpath unless replace is set (where the filesystem supports it).
func rename(oldpath, newpath string, replace bool) error {
	if !replace {
		err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("%s already exists (use -f to overwrite)", newpath)
		}
		if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
			return err
		}
	}
	return os.Rename(oldpath, newpath)
}

// syncDir fsyncs a directory (after a rename in it).
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// outputPerm is the mode a new output file gets: that of its input when it
// has one (as gzip does), else 0666 minus the umask.
func outputPerm(src string) fs.FileMode {
	if src != stdio {
		if st, err := os.Stat(src); err == nil {
			return st.Mode().Perm()
		}
	}
	mask := syscall.Umask(0)
	syscall.Umask(mask)
	return fs.FileMode(0o666 &^ mask)
}

// inodeOf returns the inode number of path, or 0 when it cannot be read.
func inodeOf(path string) (ino uint64, nlink uint64) {
	st, err := os.Lstat(path)
	if err != nil {
		return 0, 0
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return sys.Ino, uint64(sys.Nlink)
	}
	return 0, 0
}

// engineLogger returns the logger given to the engine. Errors reach the
// user as the one-line error of the command, so the engine's own log lines
// are shown only when verbose (fsck --repair: journal replays and index
// rebuilds), on stderr, prefixed by the command.
func engineLogger(cmd string, verbose bool) *slog.Logger {
	if !verbose {
		return slog.New(slog.DiscardHandler)
	}
	h := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	return slog.New(h).With("cmd", "gzfs "+cmd)
}

// openStore returns the sidecar store for the file at path. When the usual
// place cannot be used (a read-only directory, say), it falls back to a
// private store in a temporary directory that cleanup removes: the index is
// then rebuilt on every open, which costs a walk over the member headers.
func openStore(path string) (store *blockfile.Store, cleanup func(), err error) {
	if st, err := blockfile.FindStore(path); err == nil {
		return st, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "gzfs-store-*")
	if err != nil {
		return nil, nil, fmt.Errorf("create temporary index store: %w", err)
	}
	cleanup = func() { os.RemoveAll(dir) }
	st, err := blockfile.OpenStore(filepath.Join(dir, blockfile.StoreDirName))
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("open temporary index store: %w", err)
	}
	return st, cleanup, nil
}

// openFile opens an existing compressed file with the engine. close releases
// both the file and any temporary store.
func openFile(cmd, path string, readOnly, verbose bool) (f *blockfile.File, closeFn func() error, err error) {
	store, cleanup, err := openStore(path)
	if err != nil {
		return nil, nil, err
	}
	f, err = blockfile.Open(path, blockfile.Options{
		ReadOnly:        readOnly,
		Store:           store,
		Logger:          engineLogger(cmd, verbose),
		ForeignTailTorn: cmd == "fsck", // reported; --repair cuts it
	})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return f, func() error {
		defer cleanup()
		if err := f.Close(); err != nil {
			return fmt.Errorf("close %s: %w", path, err)
		}
		return nil
	}, nil
}

// sniffFile tells the format of the file at path (blockfile.Sniff).
func sniffFile(path string) (blockfile.Format, error) {
	raw, err := os.Open(path)
	if err != nil {
		return blockfile.FormatOther, err
	}
	defer raw.Close()
	return blockfile.SniffFile(raw) // an error names the read and the path
}

// errNotGzip: a file that should be plain gzip is not gzip at all.
var errNotGzip = errors.New("not in gzip format")

// openPlainGzip opens path for reading, for a caller that has found it is
// not BGZF; a file that is not gzip either is errNotGzip (with the path).
func openPlainGzip(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if format, err := blockfile.SniffFile(f); err != nil || format != blockfile.FormatGzip {
		f.Close()
		if err == nil {
			err = errNotGzip
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// sniffBGZF reports whether the file at path starts like a BGZF file (an
// empty file counts as one).
func sniffBGZF(path string) (bool, error) {
	f, err := sniffFile(path)
	return f == blockfile.FormatBGZF, err
}

// openBGZF opens path read-only with the engine after checking that it is
// BGZF, so that a plain gzip file is refused without creating a sidecar
// store next to it.
func openBGZF(cmd, path string) (*blockfile.File, func() error, error) {
	ok, err := sniffBGZF(path)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, fmt.Errorf("%w (plain gzip has no blocks: repack it with 'gzfs pack')", blockfile.ErrNotBGZF)
	}
	return openFile(cmd, path, true, false)
}

// growPipe enlarges the pipe f writes to (when it is one) to hold a whole
// output chunk, so that a reader of 'gzfs cat | prog' takes a chunk at a time
// instead of 64 KiB with a context switch each. The kernel caps the size at
// /proc/sys/fs/pipe-max-size for an unprivileged process; failure leaves the
// pipe as it was, which only costs speed.
func growPipe(f *os.File, size int) {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return
	}
	if have, err := unix.FcntlInt(f.Fd(), unix.F_GETPIPE_SZ, 0); err == nil && have < size {
		unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, size)
	}
}
