package blockfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// OpenStore opens (creating if needed) the sidecar directory dir.
func OpenStore(dir string) (*Store, error) {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("sidecar store: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("sidecar store: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("sidecar store %s: not a directory", dir)
	}
	return &Store{dir: dir}, nil
}

// FindStore returns the store of the file at path: the nearest ".gzfs"
// directory in the file's directory or its ancestors on the same filesystem,
// or a new one in the file's directory when there is none.
func FindStore(path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("find sidecar store: %w", err)
	}
	if s, ok := LookupStore(abs); ok {
		return s, nil
	}
	return OpenStore(filepath.Join(filepath.Dir(abs), StoreDirName))
}

// LookupStore returns the store FindStore would use for the file at path
// when it exists already; it never creates one (for read-only commands).
func LookupStore(path string) (*Store, bool) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, false
	}
	first := filepath.Dir(abs)
	dev, ok := deviceOf(first)
	for dir := first; ok; {
		cand := filepath.Join(dir, StoreDirName)
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			if d, ok := deviceOf(cand); ok && d == dev {
				return &Store{dir: cand}, true
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		if d, ok := deviceOf(parent); !ok || d != dev {
			break
		}
		dir = parent
	}
	return nil, false
}

func deviceOf(path string) (uint64, bool) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(sys.Dev), true
}

func (s *Store) indexPath(ino uint64) string {
	return filepath.Join(s.dir, strconv.FormatUint(ino, 10)+".idx")
}

func (s *Store) journalPath(ino uint64) string {
	return filepath.Join(s.dir, strconv.FormatUint(ino, 10)+".jnl")
}

// checkpointPath is the checkpoint index of a foreign gzip file (gzindex).
func (s *Store) checkpointPath(ino uint64) string {
	return filepath.Join(s.dir, strconv.FormatUint(ino, 10)+".ckp")
}

// tailPath is where the engine keeps a copy of a torn tail it cut on a
// guess (File.setTailAside).
func (s *Store) tailPath(ino uint64) string {
	return filepath.Join(s.dir, strconv.FormatUint(ino, 10)+".tail")
}

// DropIndex removes the seek index kept for the backing inode ino, so that
// the next open rebuilds it from the member headers; a copy of a cut tail
// (INO.tail) stays.
func (s *Store) DropIndex(ino uint64) error {
	if err := os.Remove(s.indexPath(ino)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Forget removes the sidecars kept for the backing inode ino (call it when
// the last link of a file is removed).
func (s *Store) Forget(ino uint64) error {
	var errs []error
	for _, p := range []string{s.indexPath(ino), s.journalPath(ino), s.checkpointPath(ino), s.tailPath(ino)} {
		// unlink(2) alone: os.Remove would follow every ENOENT (most files
		// have no sidecar at all) with an rmdir.
		err := unix.Unlink(p)
		for err == unix.EINTR { // a store on FUSE or NFS: the runtime's signals interrupt
			err = unix.Unlink(p)
		}
		if err != nil && err != unix.ENOENT {
			errs = append(errs, fmt.Errorf("remove %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Store locates the sidecar files (seek index and journal) of the backing
// files on one filesystem: a directory named ".gzfs", keyed by inode number,
// so that renames and hardlinks keep one index per file.
type Store struct {
	dir string
}

// StoreDirName is the name of the sidecar directory. The mount hides it.
const StoreDirName = ".gzfs"

// writeFileSync writes b to a new file at path (replacing one) and
// fsyncs it.
func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}
