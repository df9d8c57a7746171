//go:build libdeflate

package gzindex

/*
#cgo LDFLAGS: -lz
#include <zlib.h>
#include <stdlib.h>
#include <string.h>

// gzi_new allocates and initialises a stream for windowBits wbits.
static z_stream *gzi_new(int wbits) {
	z_stream *s = calloc(1, sizeof(z_stream));
	if (s == NULL) return NULL;
	if (inflateInit2(s, wbits) != Z_OK) { free(s); return NULL; }
	return s;
}

static void gzi_free(z_stream *s) { inflateEnd(s); free(s); }

// gzi_inflate runs inflate over in and out (Go memory, not kept: the
// pointers are cleared before returning) and reports what is left.
static int gzi_inflate(z_stream *s, unsigned char *in, unsigned in_len, unsigned char *out, unsigned out_len,
		int flush, unsigned *in_left, unsigned *out_left, int *data_type) {
	s->next_in = in; s->avail_in = in_len;
	s->next_out = out; s->avail_out = out_len;
	int ret = inflate(s, flush);
	*in_left = s->avail_in; *out_left = s->avail_out; *data_type = s->data_type;
	s->next_in = Z_NULL; s->next_out = Z_NULL; s->avail_in = 0; s->avail_out = 0;
	return ret;
}

static int gzi_setdict(z_stream *s, unsigned char *d, unsigned n) { return inflateSetDictionary(s, d, n); }
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"
)

// Supported reports whether this build can build and read checkpoint
// indexes (it needs zlib, linked in the libdeflate build).
const Supported = true

// Window bits of zlib's inflateInit2: a gzip member (header, deflate,
// trailer), or raw deflate data.
const (
	wbitsGzip = 15 + 16
	wbitsRaw  = -15
)

// inflater is a zlib inflate stream in C memory.
type inflater struct {
	s     *C.z_stream
	wbits int // the kind of stream being read
}

func newInflater(wbits int) (*inflater, error) {
	s := C.gzi_new(C.int(wbits))
	if s == nil {
		return nil, errors.New("gzindex: zlib inflateInit2 failed")
	}
	z := &inflater{s: s, wbits: wbits}
	runtime.AddCleanup(z, func(s *C.z_stream) { C.gzi_free(s) }, s)
	return z, nil
}

// reset starts a new stream of the given kind.
func (z *inflater) reset(wbits int) error {
	if r := C.inflateReset2(z.s, C.int(wbits)); r != C.Z_OK {
		return fmt.Errorf("gzindex: inflateReset2: zlib error %d", int(r))
	}
	z.wbits = wbits
	return nil
}

// prime feeds the bits bits (1..7) of value before the next input byte.
func (z *inflater) prime(bits int, value int) error {
	if r := C.inflatePrime(z.s, C.int(bits), C.int(value)); r != C.Z_OK {
		return fmt.Errorf("gzindex: inflatePrime: zlib error %d", int(r))
	}
	return nil
}

// setDict gives a raw stream the 32 KiB of output before its start.
func (z *inflater) setDict(d []byte) error {
	if len(d) == 0 {
		return nil
	}
	r := C.gzi_setdict(z.s, (*C.uchar)(unsafe.Pointer(unsafe.SliceData(d))), C.uint(len(d)))
	runtime.KeepAlive(d)
	if r != C.Z_OK {
		return fmt.Errorf("gzindex: inflateSetDictionary: zlib error %d", int(r))
	}
	return nil
}

// step results.
const (
	stepOK = iota
	stepStreamEnd
	stepNeedInput // no progress possible without more input (or out space)
)

// step inflates from in into out (Z_BLOCK when block is set: stop at
// every deflate block boundary). It returns what it consumed and
// produced, the stream's data_type and a step result; a damaged stream is
// an error.
func (z *inflater) step(in, out []byte, block bool) (consumed, produced int, dataType int, res int, err error) {
	var inLeft, outLeft C.uint
	var dt C.int
	flush := C.int(C.Z_NO_FLUSH)
	if block {
		flush = C.Z_BLOCK
	}
	var inPtr, outPtr *C.uchar
	if len(in) > 0 {
		inPtr = (*C.uchar)(unsafe.Pointer(unsafe.SliceData(in)))
	}
	if len(out) > 0 {
		outPtr = (*C.uchar)(unsafe.Pointer(unsafe.SliceData(out)))
	}
	r := C.gzi_inflate(z.s, inPtr, C.uint(len(in)), outPtr, C.uint(len(out)), flush, &inLeft, &outLeft, &dt)
	runtime.KeepAlive(in)
	runtime.KeepAlive(out)
	consumed, produced, dataType = len(in)-int(inLeft), len(out)-int(outLeft), int(dt)
	switch r {
	case C.Z_OK:
		return consumed, produced, dataType, stepOK, nil
	case C.Z_STREAM_END:
		return consumed, produced, dataType, stepStreamEnd, nil
	case C.Z_BUF_ERROR:
		return consumed, produced, dataType, stepNeedInput, nil
	case C.Z_NEED_DICT:
		return consumed, produced, dataType, 0, fmt.Errorf("%w: a preset dictionary is required", ErrCorrupt)
	case C.Z_DATA_ERROR:
		msg := "invalid deflate data"
		if z.s.msg != nil {
			msg = C.GoString(z.s.msg)
		}
		return consumed, produced, dataType, 0, fmt.Errorf("%w: %s", ErrCorrupt, msg)
	default:
		return consumed, produced, dataType, 0, fmt.Errorf("gzindex: inflate: zlib error %d", int(r))
	}
}
