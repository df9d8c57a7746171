package bgzf

import "bytes"

// terminator returns n >= 2 bytes of deflate data that, appended to a
// byte-aligned non-final deflate stream, end it without producing output.
//
//	n in 2..5: n-2 empty non-final fixed-Huffman blocks and an empty final one (10 bits each)
//	n == 6:    an empty non-final fixed-Huffman block and an empty final stored block
//	n >= 7:    empty non-final stored blocks (5 bytes each) before one of the above
func terminator(dst []byte, n int) []byte {
	for n >= 7 {
		dst = append(dst, 0x00, 0x00, 0x00, 0xff, 0xff)
		n -= 5
	}
	switch n {
	case 2:
		return append(dst, 0x03, 0x00) // final fixed: bits 1,1,0 then EOB 0000000
	case 3:
		return append(dst, 0x02, 0x0c, 0x00)
	case 4:
		return append(dst, 0x02, 0x08, 0x30, 0x00)
	case 5:
		return append(dst, 0x02, 0x08, 0x20, 0xc0, 0x00)
	case 6:
		return append(dst, 0x02, 0x04, 0x00, 0x00, 0xff, 0xff)
	}
	panic("bgzf: terminator shorter than 2 bytes")
}

// hasTerminator reports whether member ends (before its trailer) with the
// terminator of length n that this package writes.
func hasTerminator(member []byte, n int) bool {
	if n < minTerminator || len(member) < HeaderSize+n+TrailerSize {
		return false
	}
	var buf [64]byte
	want := terminator(buf[:0], n)
	end := len(member) - TrailerSize
	return bytes.Equal(member[end-n:end], want)
}
