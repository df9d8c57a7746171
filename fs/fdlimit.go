package fs

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Idle engines keep their backing file open (two descriptors each) so that
// a reopen is cheap; they are a cache and must never cost a user an open.
// The limit on open descriptors (RLIMIT_NOFILE) is the process's, shared by
// every mount it serves, so the relief is process-wide as well: an open
// that fails with EMFILE or ENFILE first closes the idle engines of every
// mount of the process and is tried once more.

// maxIdle is the most idle engines a mount keeps, when the descriptor
// limit allows.
const maxIdle = 256

// idleLimit is how many idle engines a mount keeps: maxIdle, or fewer so
// that idle engines hold at most a quarter of the descriptor limit.
func idleLimit() int {
	return int(min(uint64(maxIdle), fdLimit()/8))
}

// fdLimit is the process's limit on open descriptors (RLIMIT_NOFILE, soft).
func fdLimit() uint64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return unix.RLIM_INFINITY
	}
	return rl.Cur
}

// idleTables are the open tables of the process's mounts, for relieveFDs.
var idleTables struct {
	sync.Mutex
	m map[*openTable]struct{}
}

func registerTable(t *openTable) {
	idleTables.Lock()
	if idleTables.m == nil {
		idleTables.m = make(map[*openTable]struct{})
	}
	idleTables.m[t] = struct{}{}
	idleTables.Unlock()
}

func unregisterTable(t *openTable) {
	idleTables.Lock()
	delete(idleTables.m, t)
	idleTables.Unlock()
}

// relieveFDs closes the idle engines and cached directory descriptors of
// every mount of the process and reports whether it closed any (so that a
// failed open is worth retrying).
func relieveFDs() bool {
	idleTables.Lock()
	tables := make([]*openTable, 0, len(idleTables.m))
	for t := range idleTables.m {
		tables = append(tables, t)
	}
	idleTables.Unlock()
	closed := false
	for _, t := range tables {
		if t.shedIdle() > 0 {
			closed = true
		}
		if t.fsys.dirs.shed() > 0 {
			closed = true
		}
	}
	return closed
}

// outOfFDs reports whether err is the process's (EMFILE) or the system's
// (ENFILE) limit on open descriptors.
func outOfFDs(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE)
}

// reliefFor reports whether an open that failed with err is worth trying
// again: the process is out of descriptors and idle engines were closed.
// It is false once there are none left to close, so a retry loop ends.
func reliefFor(err error) bool {
	return err != nil && outOfFDs(err) && relieveFDs()
}

// fdWarned is when the daemon last logged that it ran out of descriptors
// (unix seconds): at most one line a minute.
var fdWarned atomic.Int64

// warnOutOfFDs reports whether the daemon should log, now, that an
// operation failed for want of descriptors.
func warnOutOfFDs() bool {
	now := time.Now().Unix()
	last := fdWarned.Load()
	return now-last >= 60 && fdWarned.CompareAndSwap(last, now)
}
