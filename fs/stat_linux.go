package fs

import "syscall"

// syscallStat is the stat type go-fuse's fuse.Attr.FromStat takes.
type syscallStat = syscall.Stat_t
