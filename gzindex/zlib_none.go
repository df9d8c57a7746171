//go:build !libdeflate

package gzindex

import "errors"

// Supported reports whether this build can build and read checkpoint
// indexes: the pure-Go build cannot (zlib is linked in the libdeflate
// build); foreign gzip files are then read as a stream.
const Supported = false

var errUnsupported = errors.New("gzindex: checkpoint indexes need the libdeflate build (zlib)")

const (
	wbitsGzip = 15 + 16
	wbitsRaw  = -15
)

const (
	stepOK = iota
	stepStreamEnd
	stepNeedInput
)

type inflater struct{ wbits int }

func newInflater(int) (*inflater, error) { return nil, errUnsupported }
func (*inflater) reset(int) error        { return errUnsupported }
func (*inflater) prime(int, int) error   { return errUnsupported }
func (*inflater) setDict([]byte) error   { return errUnsupported }
func (*inflater) step([]byte, []byte, bool) (int, int, int, int, error) {
	return 0, 0, 0, 0, errUnsupported
}
