package integration

import (
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
	"golang.org/x/sys/unix"
)

// posixtestExcluded are the go-fuse posixtest cases gzfs does not run, and
// why (each is documented in docs/mount.md).
var posixtestExcluded = map[string]string{
	"Tmpfile": "O_TMPFILE is not supported (EOPNOTSUPP), see TestTmpfileUnsupported",
	// It expects two fds of one process to hold conflicting F_SETLK locks,
	// which is go-fuse loopback's OFD emulation, not POSIX: on ext4 the
	// second F_SETLK succeeds, and so it does on gzfs (locks are the
	// kernel's, local to the machine).
	"FcntlFlockLocksFile": "expects OFD semantics from F_SETLK; fails on ext4 too",
	// fstat of an open directory after it was renamed: a go-fuse limitation
	// (hanwen/go-fuse#55); the case skips itself.
	"RenameOpenDir": "go-fuse limitation #55",
	// 64 KiB xattr values: ext4 (the backing here) takes at most one block.
	"XAttrLarge": "the backing ext4 refuses large xattr values; the case skips itself",
}

// TestGoFusePosixtest runs go-fuse's own POSIX conformance cases against
// the gzfs mount, as root, each in a fresh directory: with allow_other (the
// kernel checks permissions) and without (the daemon's access decides).
func TestGoFusePosixtest(t *testing.T) {
	requireRoot(t)
	for _, opts := range [][]string{{"allow_other"}, nil} {
		t.Run(strings.Join(append([]string{"opts"}, opts...), "-"), func(t *testing.T) {
			runPosixtest(t, newMount(t, opts...))
		})
	}
}

// runPosixtest runs every case not excluded, each in a fresh directory of m.
func runPosixtest(t *testing.T, m *mountProc) {
	names := make([]string, 0, len(posixtest.All))
	for name := range posixtest.All {
		if _, ok := posixtestExcluded[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			dir := m.path("posixtest-" + name)
			if err := os.Mkdir(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			posixtest.All[name](t, dir)
			if t.Failed() {
				t.Logf("daemon log:\n%s", m.logText())
			}
		})
	}
}

// TestTmpfileUnsupported: open(O_TMPFILE) fails with the documented
// EOPNOTSUPP and creates nothing.
func TestTmpfileUnsupported(t *testing.T) {
	m := newMount(t)
	_, err := os.OpenFile(m.dir, os.O_RDWR|unix.O_TMPFILE, 0o600)
	expectErrno(t, err, syscall.EOPNOTSUPP)
	if ents, _ := os.ReadDir(m.backing); len(ents) > 1 || len(ents) == 1 && ents[0].Name() != ".gzfs" {
		t.Errorf("backing has %v", ents)
	}
}
