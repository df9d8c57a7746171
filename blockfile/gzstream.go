package blockfile

import (
	"bufio"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
)

// gzipStream decompresses a gzip stream member by member, with one rule
// for what follows a member (the checkpoint index builder's too): another
// member when the next two bytes are the gzip magic, where a damaged
// header is an error; otherwise the end of the data, whatever follows
// (zeros or other bytes after the last member, which gzip ignores too).
type gzipStream struct {
	zr  *gzip.Reader
	br  *bufio.Reader
	out int64 // uncompressed bytes so far
}

// NewGzipStream returns a reader of the uncompressed bytes of the gzip
// stream r (see gzipStream for what follows a member). The error of a first
// header that is missing or damaged is returned as it is (io.EOF for no
// input at all).
func NewGzipStream(r io.Reader) (io.Reader, error) {
	g, err := newGzipStream(r)
	if err != nil {
		return nil, err // not a nil *gzipStream in an interface
	}
	return g, nil
}

func newGzipStream(r io.Reader) (*gzipStream, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 256<<10)
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, err
	}
	zr.Multistream(false)
	return &gzipStream{zr: zr, br: br}, nil
}

func (g *gzipStream) Read(p []byte) (int, error) {
	for {
		n, err := g.zr.Read(p)
		g.out += int64(n)
		if err != io.EOF {
			return n, err
		}
		if head, _ := g.br.Peek(2); len(head) < 2 || head[0] != 0x1f || head[1] != 0x8b {
			return n, io.EOF
		}
		if rerr := g.zr.Reset(g.br); rerr != nil {
			return n, fmt.Errorf("the header of the member after uncompressed offset %d: %w", g.out, rerr)
		}
		g.zr.Multistream(false)
		if n > 0 {
			return n, nil
		}
	}
}
