package bgzf

import "bytes"

// Padding. A member can be padded at either end of its deflate data with
// empty deflate blocks, which inflate to nothing:
//
//   - a terminator (after a byte-aligned, non-final body) is n >= 2 bytes
//     that also end the stream: any length works;
//   - a prefix (before a complete deflate stream, such as libdeflate's
//     output) is n bytes of empty non-final blocks ending byte-aligned:
//     0, 5, 6, 7 and every n >= 9 work (see PrefixOK).

// bitWriter appends bits LSB-first, as deflate packs them.
type bitWriter struct {
	out   []byte
	nbits uint
}

func (w *bitWriter) bits(v uint32, n uint) {
	for i := uint(0); i < n; i++ {
		if w.nbits%8 == 0 {
			w.out = append(w.out, 0)
		}
		if v>>i&1 != 0 {
			w.out[len(w.out)-1] |= 1 << (w.nbits % 8)
		}
		w.nbits++
	}
}

// emptyFixed writes an empty fixed-Huffman block: BFINAL, BTYPE 01, EOB.
func (w *bitWriter) emptyFixed(final bool) {
	b := uint32(0)
	if final {
		b = 1
	}
	w.bits(b, 1)
	w.bits(1, 2)
	w.bits(0, 7)
}

// emptyStored writes an empty stored block and leaves the writer aligned.
func (w *bitWriter) emptyStored(final bool) {
	b := uint32(0)
	if final {
		b = 1
	}
	w.bits(b, 1)
	w.bits(0, 2)
	w.nbits = (w.nbits + 7) / 8 * 8
	w.out = append(w.out, 0x00, 0x00, 0xff, 0xff)
	w.nbits += 32
}

// terminator returns n >= 2 bytes of deflate data that, appended to a
// byte-aligned non-final deflate stream, end it without producing output:
// empty non-final stored blocks (5 bytes each) while more than 6 bytes are
// left, then n-2 empty non-final fixed-Huffman blocks and an empty final one
// (n = 2..5), or an empty non-final fixed-Huffman block and an empty final
// stored block (n = 6).
func terminator(dst []byte, n int) []byte {
	if n < minTerminator {
		panic("bgzf: terminator shorter than 2 bytes")
	}
	w := bitWriter{out: dst, nbits: 0}
	start := len(dst)
	w.nbits = uint(start * 8)
	for n > 6 {
		w.emptyStored(false)
		n -= 5
	}
	if n == 6 {
		w.emptyFixed(false)
		w.emptyStored(true)
		return w.out
	}
	for i := 0; i < n-2; i++ {
		w.emptyFixed(false)
	}
	w.emptyFixed(true)
	return w.out
}

// prefixFixedRuns[n] is how many empty fixed blocks, followed by one empty
// stored block, make a byte-aligned prefix of exactly n bytes (n <= 14).
var prefixFixedRuns = map[int]int{5: 0, 6: 1, 7: 2, 9: 3, 10: 4, 11: 5, 12: 6, 14: 7}

// PrefixOK reports whether a prefix of n bytes exists.
func PrefixOK(n int) bool { return n == 0 || n >= 5 && n != 8 }

// prefix returns n bytes of empty non-final deflate blocks ending
// byte-aligned. n must satisfy PrefixOK.
func prefix(dst []byte, n int) []byte {
	if !PrefixOK(n) {
		panic("bgzf: impossible prefix length")
	}
	w := bitWriter{out: dst, nbits: uint(len(dst) * 8)}
	for n >= 15 || n == 13 {
		if n == 13 { // 6 + 7
			w.emptyFixed(false)
			w.emptyStored(false)
			n = 7
			continue
		}
		w.emptyStored(false)
		n -= 5
	}
	if n == 0 {
		return w.out
	}
	for i := 0; i < prefixFixedRuns[n]; i++ {
		w.emptyFixed(false)
	}
	w.emptyStored(false)
	return w.out
}

// hasTerminator reports whether member ends (before its trailer) with the
// terminator of length n that this package writes.
func hasTerminator(member []byte, n int) bool {
	if n < minTerminator || len(member) < HeaderSize+n+TrailerSize {
		return false
	}
	want := terminator(make([]byte, 0, n), n)
	end := len(member) - TrailerSize
	return bytes.Equal(member[end-n:end], want)
}

// hasPrefix reports whether member's deflate data starts with the prefix of
// length n that this package writes.
func hasPrefix(member []byte, n int) bool {
	if !PrefixOK(n) || n == 0 || len(member) < HeaderSize+n+TrailerSize {
		return false
	}
	return bytes.Equal(member[HeaderSize:HeaderSize+n], prefix(make([]byte, 0, n), n))
}
