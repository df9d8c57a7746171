// Package fs is the FUSE side of gzfs: go-fuse nodes that show a backing
// directory tree in which every regular file P of the mount is stored as the
// block-gzip file P.gz (see package blockfile). It holds no compression
// logic; each operation translates the request, calls the engine or a *at
// system call on the backing tree, and maps the error to an errno in one
// place (toErrno).
//
// # Names
//
// A backing entry is shown in the mount as follows (pure functions in
// names.go):
//
//   - a regular file "x.gz" is the gzfs file "x": reads and writes go through
//     a blockfile.File, st_size is the uncompressed size;
//   - every other entry (directories, symlinks, fifos, sockets, devices,
//     regular files without ".gz") shows under its own name; regular files
//     are passed through byte for byte, read-write;
//   - a name clash, "x" next to "x.gz", shows the plain "x"; the "x.gz" is
//     hidden from the mount (never changed) and the clash is logged once;
//   - the name ".gzfs" (the sidecar store of package blockfile) is reserved
//     in every directory: never shown, cannot be created;
//   - a regular "x.gz" that is gzip but not BGZF (gzip(1) output) is shown
//     as "x", read-only, and is decompressed as a stream; its st_size is the
//     ISIZE trailer, as `gzip -l` shows it.
//
// # Nodes and open files
//
// Nodes are inode based (fusefs.InodeEmbedder); their inode numbers are the
// backing st_ino (mixed with the device number when the tree spans file
// systems), so hardlinks are one inode. A node keeps only its kind; where it
// lives is derived from the go-fuse tree (parent, name) at each operation and
// resolved relative to a directory fd of BACKING with openat2(2)
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, so the daemon never follows a symlink
// out of BACKING and paths longer than PATH_MAX are walked in pieces. The
// descriptors of recently used directories are reused for up to a second
// (dirfds.go).
//
// All handles of one backing inode (two opens, or two hardlinks) share one
// blockfile.File through a table keyed by inode number (openfiles.go),
// refcounted and closed at the last release. An open file keeps a second
// descriptor of the backing file for fstat/fchmod/fchown/futimens, so an
// unlinked open file keeps working until its last close.
package fs
