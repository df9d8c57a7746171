//go:build !libdeflate

package bgzf

import (
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/flate"
)

// Built without libdeflate: members are compressed and inflated by
// klauspost/compress alone.

type fastEncoder struct{}

func newFastEncoder(level int) *fastEncoder { return nil }

func (*fastEncoder) compress(dst, data []byte) ([]byte, bool) { return nil, false }

// FastCodec names the deflate implementation in use.
const FastCodec = "klauspost/compress"

// inflater is a reusable klauspost/compress inflater.
type inflater struct {
	fr    io.Reader
	reset flate.Resetter
	br    bytes.Reader
}

func newInflater() *inflater {
	fr := flate.NewReader(bytes.NewReader(nil))
	reset, ok := fr.(flate.Resetter)
	if !ok {
		panic("bgzf: flate reader cannot be reset")
	}
	return &inflater{fr: fr, reset: reset}
}

// inflate decodes deflate data into dst (len(dst) = the expected size) and
// checks that the stream ends exactly at the end of body.
func (d *Decoder) inflate(dst, body []byte) error {
	in := d.in
	in.br.Reset(body)
	if err := in.reset.Reset(&in.br, nil); err != nil {
		return fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if _, err := io.ReadFull(in.fr, dst); err != nil {
		return fmt.Errorf("%w: inflate: %v", ErrFormat, err)
	}
	var one [1]byte
	if k, err := in.fr.Read(one[:]); k != 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			return fmt.Errorf("%w: more data than ISIZE %d", ErrFormat, len(dst))
		}
		return fmt.Errorf("%w: inflate: %v", ErrFormat, err)
	}
	if in.br.Len() != 0 {
		return fmt.Errorf("%w: %d bytes after the end of the deflate stream", ErrFormat, in.br.Len())
	}
	return nil
}
