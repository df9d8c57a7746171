//go:build !libdeflate

package bgzf

import (
	"fmt"
	"io"
)

// Built without libdeflate: members are compressed and inflated by
// klauspost/compress alone.

type fastEncoder struct{}

func newFastEncoder(level int) *fastEncoder { return nil }

func (*fastEncoder) compress(dst, data []byte) ([]byte, bool) { return nil, false }

// FastCodec names the deflate implementation in use.
const FastCodec = "klauspost/compress"

// inflate decodes deflate data into dst (len(dst) = the expected size) and
// checks that the stream ends exactly at the end of body.
func (d *Decoder) inflate(dst, body []byte) error {
	d.br.Reset(body)
	if err := d.reset.Reset(&d.br, nil); err != nil {
		return fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if _, err := io.ReadFull(d.fr, dst); err != nil {
		return fmt.Errorf("%w: inflate: %v", ErrFormat, err)
	}
	var one [1]byte
	if k, err := d.fr.Read(one[:]); k != 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			return fmt.Errorf("%w: more data than ISIZE %d", ErrFormat, len(dst))
		}
		return fmt.Errorf("%w: inflate: %v", ErrFormat, err)
	}
	if d.br.Len() != 0 {
		return fmt.Errorf("%w: %d bytes after the end of the deflate stream", ErrFormat, d.br.Len())
	}
	return nil
}
