package fs

import (
	"context"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// The node API's Write(ctx, data, off) does not carry the open file's
// flags, which the kernel sends with every write: fcntl(F_SETFL) may have
// set or cleared O_APPEND since the open. The raw wrapper notes them for
// the time of the request, keyed by the request's cancel channel, which
// go-fuse hands to the node API as the context's Cancel and which is
// unique among requests in flight.

// noteWriteFlags records flags for the write request of cancel and returns
// the function that forgets them when the request is answered.
func (fsys *FS) noteWriteFlags(cancel <-chan struct{}, flags uint32) func() {
	if cancel == nil {
		return func() {}
	}
	fsys.writeFlags.Store(cancel, flags)
	return func() { fsys.writeFlags.Delete(cancel) }
}

// appendNow reports whether a write (its context) goes to the end of the
// file: the open file's O_APPEND as the kernel sent it with this write,
// else (a caller outside the mount's request path) as it was at the open.
func (fsys *FS) appendNow(ctx context.Context, atOpen bool) bool {
	c, ok := ctx.(*fuse.Context)
	if !ok || c.Cancel == nil {
		return atOpen
	}
	v, ok := fsys.writeFlags.Load(c.Cancel)
	if !ok {
		return atOpen
	}
	return v.(uint32)&unix.O_APPEND != 0
}
