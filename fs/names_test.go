package fs

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestEntryName(t *testing.T) {
	long := strings.Repeat("n", 254)
	lb := longBase(long)
	reg, dir := uint32(unix.S_IFREG), uint32(unix.S_IFDIR)
	present := map[string]uint32{"x": reg, "x.gz": reg, "y.gz": reg, "d.gz": dir, lb + ".gz": reg, lb + ".name": reg,
		"u.gz": reg, "u.gz.gz": reg, "s.gz": unix.S_IFLNK, "s.gz.gz": reg}
	typeOf := func(n string) (uint32, bool) { m, ok := present[n]; return m, ok }
	names := map[string]string{lb: long}
	longName := func(base string) (string, bool) { n, ok := names[base]; return n, ok }
	orphan := longBase("gone")
	tests := []struct {
		name           string
		regular, isDir bool
		want           string
		wantKind       kind
		hidden         bool
	}{
		{"y.gz", true, false, "y", kindGz, false},
		{"x.gz", true, false, "", 0, true}, // clash: plain x wins
		{"x", true, false, "x", kindPlain, false},
		{".gz", true, false, ".gz", kindPlain, false},
		{"d.gz", false, true, "d.gz", kindDir, false},
		{"l.gz", false, false, "l.gz", kindOther, false},
		{".gzfs", false, true, "", 0, true},
		{".gzfs.gz", true, false, "", 0, true},
		{"a.gz.gz", true, false, "a.gz", kindGz, false},
		// A user's "u" and "u.gz" are backing "u.gz" and "u.gz.gz": no clash.
		{"u.gz", true, false, "u", kindGz, false},
		{"u.gz.gz", true, false, "u.gz", kindGz, false},
		// A symlink "s.gz" shows as itself: it wins over the file "s.gz".
		{"s.gz.gz", true, false, "", 0, true},
		{lb + ".gz", true, false, long, kindGz, false},
		{lb + ".name", true, false, "", 0, true},
		{orphan + ".gz", true, false, orphan, kindGz, false}, // name file lost: shown by its backing name
		{orphan + ".name", true, false, "", 0, true},
	}
	for _, tt := range tests {
		got, k, hidden := entryName(tt.name, tt.regular, tt.isDir, typeOf, longName)
		if hidden != tt.hidden || (!hidden && (got != tt.want || k != tt.wantKind)) {
			t.Errorf("entryName(%q) = %q, %v, %v; want %q, %v, %v", tt.name, got, k, hidden, tt.want, tt.wantKind, tt.hidden)
		}
	}
}

func TestBackingName(t *testing.T) {
	if got := backingName("a", kindGz, 255); got != "a.gz" {
		t.Errorf("gz: %q", got)
	}
	if got := backingName("a.gz", kindGz, 255); got != "a.gz.gz" {
		t.Errorf("gz.gz: %q", got)
	}
	for _, k := range []kind{kindDir, kindPlain, kindOther} {
		if got := backingName("a", k, 255); got != "a" {
			t.Errorf("%v: %q", k, got)
		}
	}
	fits := strings.Repeat("f", 252)
	if got := backingName(fits, kindGz, 255); got != fits+".gz" {
		t.Errorf("252 bytes: %q", got)
	}
	for _, n := range []int{253, 254, 255} {
		name := strings.Repeat("l", n)
		got := backingName(name, kindGz, 255)
		if !isLongBase(strings.TrimSuffix(got, ".gz")) || len(got) > 255 || longNameFile(got) == "" {
			t.Errorf("%d bytes: %q", n, got)
		}
		if backingName(name, kindDir, 255) != name {
			t.Errorf("%d-byte directory name changed", n)
		}
	}
	if longNameFile("a.gz") != "" || isLongNameFile("gzfs.longname.x.name") {
		t.Error("short names taken for long ones")
	}
}

// TestDropLongNameKeepsRecreated: the name file of a long name is removed
// after its entry, unless the entry is there again (another daemon over
// the same directory made it anew between the unlink and this removal):
// its file would otherwise show as gzfs.longname.HASH.
func TestDropLongNameKeepsRecreated(t *testing.T) {
	fsys := newTestFS(t)
	dirfd, err := unix.Open(fsys.Backing(), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirfd)
	name := strings.Repeat("l", 254) // with ".gz", past NAME_MAX
	bname := fsys.bname(name, kindGz)
	nf := longNameFile(bname)
	if nf == "" {
		t.Fatalf("%d-byte name: no long form", len(name))
	}
	if err := fsys.writeLongName(dirfd, bname, name); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Openat(dirfd, bname, unix.O_CREAT|unix.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	fsys.dropLongName(dirfd, bname)
	if got, ok := fsys.readLongName(dirfd, longBase(name)); !ok || got != name {
		t.Fatalf("the name file of an entry that is there was removed (%q, %v)", got, ok)
	}
	unix.Unlinkat(dirfd, bname, 0)
	fsys.dropLongName(dirfd, bname)
	if _, ok := fsys.readLongName(dirfd, longBase(name)); ok {
		t.Fatal("the name file of a removed entry stays")
	}
}
