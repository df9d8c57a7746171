package fs

import "strings"

// gzSuffix is the extension of the backing files that hold gzfs files.
const gzSuffix = ".gz"

// reservedName is the sidecar directory of blockfile; it is hidden from the
// mount in every directory and cannot be created through it.
const reservedName = ".gzfs"

// kind says how a node maps to its backing entry.
type kind uint8

const (
	kindDir   kind = iota // a directory, same name
	kindGz                // a gzfs file: mount name + ".gz"
	kindPlain             // a regular file without ".gz": passthrough, same name
	kindOther             // symlink, fifo, socket, device: same name
)

func (k kind) String() string {
	switch k {
	case kindDir:
		return "dir"
	case kindGz:
		return "gzfs file"
	case kindPlain:
		return "plain file"
	default:
		return "special file"
	}
}

// isReserved reports whether a mount name can never exist.
func isReserved(name string) bool { return name == reservedName }

// backingName returns the backing name of the mount entry name of kind k.
func backingName(name string, k kind) string {
	if k == kindGz {
		return name + gzSuffix
	}
	return name
}

// gzMountName returns the mount name of a backing regular file, and whether
// it is a gzfs file (ends in ".gz" with something before it).
func gzMountName(backing string) (string, bool) {
	if len(backing) > len(gzSuffix) && strings.HasSuffix(backing, gzSuffix) {
		return backing[:len(backing)-len(gzSuffix)], true
	}
	return backing, false
}

// entryName decides how the backing entry name (regular file or not) shows
// in the mount. exists reports whether a backing entry of a given name is in
// the same directory. It returns the mount name, the kind, and whether the
// entry is hidden (reserved name, or a clash that the plain entry wins).
func entryName(name string, regular bool, isDir bool, exists func(string) bool) (mount string, k kind, hidden bool) {
	if isReserved(name) {
		return "", 0, true
	}
	switch {
	case isDir:
		return name, kindDir, false
	case !regular:
		return name, kindOther, false
	}
	m, gz := gzMountName(name)
	if !gz {
		return name, kindPlain, false
	}
	if isReserved(m) || exists(m) {
		return "", 0, true
	}
	return m, kindGz, false
}
