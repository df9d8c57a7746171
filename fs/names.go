package fs

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"golang.org/x/sys/unix"
)

// gzSuffix is the extension of the backing files that hold gzfs files.
const gzSuffix = ".gz"

// reservedName is the sidecar directory of blockfile; it is hidden from the
// mount in every directory and cannot be created through it.
const reservedName = ".gzfs"

// Long names. A gzfs file whose name plus ".gz" does not fit in the backing
// filesystem's NAME_MAX is stored as "gzfs.longname.HASH.gz", HASH being the
// unpadded base64url SHA-256 of the name (43 bytes), and its full name is
// kept beside it in "gzfs.longname.HASH.name" (the name's bytes, nothing
// else). The ".name" file is written before the ".gz" is created or
// renamed into place and removed after it is gone, so a crash leaves at
// worst a hidden orphan ".name" or a ".gz" that shows as "gzfs.longname.HASH"
// (its data intact). Names that fit keep the plain form: the cost is only
// for long names (the model is gocryptfs's longnames).
const (
	longPrefix     = "gzfs.longname."
	longHashLen    = 43 // base64.RawURLEncoding of 32 bytes
	longNameSuffix = ".name"
)

// kind says how a node maps to its backing entry.
type kind uint8

const (
	kindDir   kind = iota // a directory, same name
	kindGz                // a gzfs file: mount name + ".gz" (or its long form)
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

// isReserved reports whether a mount name can never exist: the sidecar
// store, and the ".name" files of long names.
func isReserved(name string) bool {
	return name == reservedName || isLongNameFile(name)
}

// backingName returns the backing name of the mount entry name of kind k,
// given the backing filesystem's NAME_MAX.
func backingName(name string, k kind, nameMax int) string {
	if k != kindGz {
		return name
	}
	if len(name)+len(gzSuffix) <= nameMax {
		return name + gzSuffix
	}
	return longBase(name) + gzSuffix
}

// longBase returns "gzfs.longname.HASH" for a long name.
func longBase(name string) string {
	sum := sha256.Sum256([]byte(name))
	return longPrefix + base64.RawURLEncoding.EncodeToString(sum[:])
}

// isLongBase reports whether s has the form "gzfs.longname.HASH".
func isLongBase(s string) bool {
	if len(s) != len(longPrefix)+longHashLen || !strings.HasPrefix(s, longPrefix) {
		return false
	}
	for _, c := range s[len(longPrefix):] {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// isLongNameFile reports whether s is the name file of a long name.
func isLongNameFile(s string) bool {
	return strings.HasSuffix(s, longNameSuffix) && isLongBase(strings.TrimSuffix(s, longNameSuffix))
}

// longNameFile returns the name file that goes with a long backing name
// ("gzfs.longname.HASH.gz"), or "" when bname is not in the long form.
func longNameFile(bname string) string {
	base, ok := strings.CutSuffix(bname, gzSuffix)
	if !ok || !isLongBase(base) {
		return ""
	}
	return base + longNameSuffix
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
// in the mount. typeOf gives the file type (S_IFMT bits) of a backing entry
// of the same directory, false when there is none; longName reads the full
// name of a long backing name ("gzfs.longname.HASH"), false when its name
// file is missing or wrong (the entry then shows under its backing name).
// It returns the mount name, the kind, and whether the entry is hidden
// (reserved name, or a clash that the entry shown under its own name wins).
func entryName(name string, regular bool, isDir bool, typeOf func(string) (uint32, bool), longName func(base string) (string, bool)) (mount string, k kind, hidden bool) {
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
	if isLongBase(m) {
		if full, ok := longName(m); ok {
			m = full
		}
	}
	if isReserved(m) || showsAsItself(m, typeOf) {
		return "", 0, true
	}
	return m, kindGz, false
}

// plainCannotTake reports whether an entry of kind k may not take the mount
// name name: a plain file (another tool's, kept as it is) named "x.gz" in
// the backing directory would read as the gzfs file "x". Rename and link
// refuse with EXDEV, so that mv falls back to copying (through Create, a
// gzfs file).
func plainCannotTake(k kind, name string) bool {
	_, gz := gzMountName(name)
	return k == kindPlain && gz
}

// showsAsItself reports whether a backing entry named name is in the
// directory and shows in the mount under that same name: anything but a
// regular file ending in ".gz" (which shows without the suffix). Only such
// an entry clashes with the gzfs file whose backing name is name+".gz": a
// user's "x.gz" (backing "x.gz.gz") and "x" (backing "x.gz") do not.
func showsAsItself(name string, typeOf func(string) (uint32, bool)) bool {
	mode, ok := typeOf(name)
	if !ok {
		return false
	}
	_, gz := gzMountName(name)
	return !(gz && mode == unix.S_IFREG)
}
