// Package gzindex gives random access to any gzip file, not only BGZF: a
// checkpoint index in the manner of zlib's zran.c (and indexed_gzip,
// gztool) records, every Span bytes of output, where a deflate block
// starts in the compressed stream (byte and bit) and the 32 KiB of output
// before it (stored compressed). A read at any offset starts at the
// checkpoint before it and inflates at most one span.
//
// An index is built by one pass over the file (Build) and kept in a file
// of its own that is mapped, not read (Open): nothing on the heap grows
// with the file. It names the gzip file it was built for (inode, birth,
// size, mtime and last bytes); Open refuses one built for another file or
// an older state of it, and every record and window carries a CRC, so a
// damaged index is detected and can be rebuilt. The on-disk format is in
// docs/format.md.
//
// Building and reading need zlib (inflatePrime, Z_BLOCK), linked in the
// libdeflate build; Supported is false in the pure-Go build.
package gzindex
