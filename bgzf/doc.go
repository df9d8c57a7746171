// Package bgzf encodes and decodes single BGZF members: gzip members that
// carry the "BC" extra subfield holding the member size (BSIZE), as written
// by htslib's bgzip. A stream of such members is an ordinary multi-member
// gzip file that any gzip tool reads, and one that can be walked from header
// to header without inflating.
//
// Members written by this package have the layout
//
//	header (18 bytes) | body | terminator (>= 2 bytes) | CRC32 | ISIZE
//
// where body is byte-aligned, non-final deflate data (a sync-flushed
// compressed stream, or stored blocks for incompressible data) and the
// terminator is a run of empty deflate blocks ending with a final one. The
// terminator can take any length of 2 bytes or more, so a member can be
// padded to fill a given slot exactly and later shrunk again (Repad) without
// recompressing: that is how gzfs rewrites a block in place.
package bgzf
