package bgzf

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
)

func testData(n int, seed uint64, compressible bool) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	if !compressible {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	words := []string{"GET ", "/index.html ", "200 ", "gzfs ", "block ", "\n", "2026-11-23 ", "POST "}
	var buf bytes.Buffer
	for buf.Len() < n {
		buf.WriteString(words[r.IntN(len(words))])
	}
	return buf.Bytes()[:n]
}

func TestTerminatorsAreValidDeflate(t *testing.T) {
	for n := 2; n < 200; n++ {
		body := terminator(nil, n)
		if len(body) != n {
			t.Fatalf("terminator(%d) has %d bytes", n, len(body))
		}
		out, err := io.ReadAll(flate.NewReader(bytes.NewReader(body)))
		if err != nil || len(out) != 0 {
			t.Fatalf("terminator(%d) = %x: inflate gave %q, %v", n, body, out, err)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	enc, err := NewEncoder(6)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte{'x'}},
		{"text", testData(61440, 1, true)},
		{"random", testData(61440, 2, false)},
		{"max random", testData(MaxBlockData-300, 3, false)},
		{"zeros", make([]byte, 61440)},
	}
	encoders := map[string]func([]byte, []byte, int) (Member, error){"fast": enc.Encode, "flexible": enc.EncodeFlexible}
	for _, tc := range cases {
		for kind, encode := range encoders {
			for _, round := range []int{0, 64} {
				tc := tc
				tc.name = kind + " " + tc.name
				m, err := encode(nil, tc.data, round)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if len(m.Bytes) > MaxMemberSize {
					t.Fatalf("%s: member %d bytes", tc.name, len(m.Bytes))
				}
				if round > 1 && len(m.Bytes)%round != 0 && len(m.Bytes) != MaxMemberSize {
					t.Fatalf("%s: member size %d not rounded to %d", tc.name, len(m.Bytes), round)
				}
				got, err := Decode(nil, m.Bytes)
				if err != nil || !bytes.Equal(got, tc.data) {
					t.Fatalf("%s: decode: %v (equal %v)", tc.name, err, bytes.Equal(got, tc.data))
				}
				// Any gzip reader must read it too.
				zr, err := gzip.NewReader(bytes.NewReader(m.Bytes))
				if err != nil {
					t.Fatal(err)
				}
				std, err := io.ReadAll(zr)
				if err != nil || !bytes.Equal(std, tc.data) {
					t.Fatalf("%s: compress/gzip: %v", tc.name, err)
				}
				h, err := ParseHeader(m.Bytes)
				if err != nil || h.Size != len(m.Bytes) || h.HeaderSize != HeaderSize {
					t.Fatalf("%s: header %+v %v", tc.name, h, err)
				}
			}
		}
	}
}

func TestPrefixesAreValidDeflate(t *testing.T) {
	final := []byte{0x03, 0x00} // an empty final block to end the stream
	for n := 0; n < 200; n++ {
		if !PrefixOK(n) {
			if n != 8 && (n < 1 || n > 4) {
				t.Fatalf("PrefixOK(%d) is false", n)
			}
			continue
		}
		body := prefix(nil, n)
		if len(body) != n {
			t.Fatalf("prefix(%d) has %d bytes", n, len(body))
		}
		out, err := io.ReadAll(flate.NewReader(bytes.NewReader(append(body, final...))))
		if err != nil || len(out) != 0 {
			t.Fatalf("prefix(%d) = %x: inflate gave %q, %v", n, body, out, err)
		}
	}
}

func TestRandomDataIsStored(t *testing.T) {
	enc, _ := NewEncoder(6)
	data := testData(61440, 4, false)
	m, err := enc.Encode(nil, data, 0)
	if err != nil {
		t.Fatal(err)
	}
	if overhead := len(m.Bytes) - len(data); overhead > 40 {
		t.Fatalf("stored member overhead %d bytes", overhead)
	}
}

func TestRepad(t *testing.T) {
	enc, _ := NewEncoder(6)
	data := testData(20000, 5, true)
	for kind, encode := range map[string]func([]byte, []byte, int) (Member, error){"fast": enc.Encode, "flexible": enc.EncodeFlexible} {
		m, err := encode(nil, data, 0)
		if err != nil {
			t.Fatal(err)
		}
		testRepad(t, kind, m, data)
	}
}

func testRepad(t *testing.T, kind string, m Member, data []byte) {
	base := len(m.Bytes)
	for _, size := range []int{base, base + 1, base + 2, base + 5, base + 6, base + 7, base + 8, base + 13, base + 1000, base + 3} {
		grown, err := Repad(nil, m, size)
		if m.Prefixed && !PrefixOK(size-base) {
			if !errors.Is(err, ErrCannotRepad) {
				t.Fatalf("%s: repad by %d: %v", kind, size-base, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("repad to %d: %v", size, err)
		}
		if len(grown.Bytes) != size {
			t.Fatalf("repad to %d gave %d", size, len(grown.Bytes))
		}
		got, err := Decode(nil, grown.Bytes)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("repad to %d: decode %v", size, err)
		}
		if size > base && Slack(grown) != size-base {
			t.Fatalf("slack of %d-byte member = %d, want %d", size, Slack(grown), size-base)
		}
		back, err := Repad(nil, grown, base)
		if err != nil || !bytes.Equal(back.Bytes, m.Bytes) {
			t.Fatalf("shrink back from %d: %v", size, err)
		}
	}
	if _, err := Repad(nil, m, base-1); !errors.Is(err, ErrCannotRepad) {
		t.Fatalf("%s: shrink below minimum: %v", kind, err)
	}
}

func TestDecodeRejectsDamage(t *testing.T) {
	enc, _ := NewEncoder(6)
	data := testData(30000, 6, true)
	m, _ := enc.Encode(nil, data, 0)
	for _, pos := range []int{0, 3, 16, 40, len(m.Bytes) / 2, len(m.Bytes) - 6, len(m.Bytes) - 2} {
		bad := bytes.Clone(m.Bytes)
		bad[pos] ^= 0x55
		got, err := Decode(nil, bad)
		if err == nil {
			t.Fatalf("flip at %d: no error", pos)
		}
		if !errors.Is(err, ErrFormat) {
			t.Fatalf("flip at %d: error %v does not wrap ErrFormat", pos, err)
		}
		if got != nil {
			t.Fatalf("flip at %d: returned data with error", pos)
		}
	}
	if _, err := Decode(nil, m.Bytes[:len(m.Bytes)-1]); err == nil {
		t.Fatal("truncated member decoded")
	}
}

func TestEOFMemberParses(t *testing.T) {
	h, err := ParseHeader(EOFMember)
	if err != nil || h.Size != len(EOFMember) {
		t.Fatalf("%+v %v", h, err)
	}
	got, err := Decode(nil, EOFMember)
	if err != nil || len(got) != 0 {
		t.Fatalf("%q %v", got, err)
	}
}

func FuzzParseHeader(f *testing.F) {
	enc, _ := NewEncoder(1)
	m, _ := enc.Encode(nil, []byte("hello"), 0)
	f.Add(m.Bytes[:HeaderSize])
	f.Add(EOFMember)
	f.Add([]byte{0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0, 10, 0, 'X', 'Y', 0, 0, 'B', 'C', 2, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err == nil && (h.Size < h.HeaderSize+TrailerSize || h.HeaderSize > len(b) || h.Size > MaxMemberSize) {
			t.Fatalf("accepted inconsistent header %+v", h)
		}
	})
}

func FuzzDecode(f *testing.F) {
	enc, _ := NewEncoder(6)
	for i, d := range [][]byte{nil, []byte("hello, world"), testData(5000, 7, true), testData(3000, 8, false)} {
		m, _ := enc.Encode(nil, d, 32*i)
		f.Add(m.Bytes)
	}
	f.Add(EOFMember)
	f.Fuzz(func(t *testing.T, member []byte) {
		out, err := Decode(nil, member)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		// Whatever decodes must be what compress/gzip reads too.
		zr, err := gzip.NewReader(bytes.NewReader(member))
		if err != nil {
			t.Fatalf("bgzf decoded what gzip rejects: %v", err)
		}
		zr.Multistream(false)
		std, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(std, out) {
			t.Fatalf("bgzf and compress/gzip disagree: %v", err)
		}
	})
}

// TestEncoderPoolKeepsEncodersAcrossGC: an idle Encoder (with libdeflate,
// 650 KiB of C memory) outlives garbage collections, so that a file
// created now and then does not allocate, fault in and free one each time
// (a sync.Pool empties at every collection).
func TestEncoderPoolKeepsEncodersAcrossGC(t *testing.T) {
	p, err := NewEncoderPool(6)
	if err != nil {
		t.Fatal(err)
	}
	e := p.Get()
	p.Put(e)
	runtime.GC()
	runtime.GC()
	if got := p.Get(); got != e {
		t.Fatal("the idle Encoder was dropped by a collection")
	}
	// Beyond the bound, Encoders are let go.
	var held []*Encoder
	for i := 0; i < 3*runtime.GOMAXPROCS(0); i++ {
		held = append(held, p.Get())
	}
	for _, e := range held {
		p.Put(e)
	}
	if n := len(p.idle); n != cap(p.idle) {
		t.Fatalf("%d idle Encoders kept, want the bound %d", n, cap(p.idle))
	}
}

// TestChunkedRoundTrip: a member assembled from chunks encoded one after
// the other plus the rest stored reads back as data (gzfs's decoder and
// compress/gzip), has the requested rounding, and repads like any flexible
// member; one that would not fit fails.
func TestChunkedRoundTrip(t *testing.T) {
	enc, err := NewEncoder(1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"text", testData(61440, 11, true)},
		{"random", testData(61440, 12, false)},
		{"short", []byte("one line\n")},
		{"empty", nil},
	} {
		for _, cut := range []int{0, 1, 2048, 4096 + 17, len(tc.data)} {
			cut = min(cut, len(tc.data))
			for _, chunk := range []int{1, 2048, 5000} {
				var chunks []byte
				for off := 0; off < cut; off += chunk {
					if chunks, err = enc.EncodeChunk(chunks, tc.data[off:min(off+chunk, cut)]); err != nil {
						t.Fatal(err)
					}
				}
				for _, round := range []int{0, 64} {
					m, err := AssembleChunked(nil, chunks, tc.data, cut, round)
					name := fmt.Sprintf("%s cut %d chunk %d round %d", tc.name, cut, chunk, round)
					if err != nil {
						if len(chunks)+len(tc.data)-cut > MaxMemberSize-40 {
							continue // too big to fit, as it says
						}
						t.Fatalf("%s: %v", name, err)
					}
					if round > 1 && len(m.Bytes)%round != 0 && len(m.Bytes) != MaxMemberSize {
						t.Fatalf("%s: member size %d not rounded", name, len(m.Bytes))
					}
					if bound := ChunkedMaxSize(len(chunks), 0, len(tc.data)-cut); round == 0 && len(m.Bytes) != bound {
						t.Fatalf("%s: member of %d bytes, ChunkedMaxSize says %d", name, len(m.Bytes), bound)
					}
					got, err := Decode(nil, m.Bytes)
					if err != nil || !bytes.Equal(got, tc.data) {
						t.Fatalf("%s: decode: %v (equal %v)", name, err, bytes.Equal(got, tc.data))
					}
					zr, err := gzip.NewReader(bytes.NewReader(m.Bytes))
					if err != nil {
						t.Fatal(err)
					}
					if std, err := io.ReadAll(zr); err != nil || !bytes.Equal(std, tc.data) {
						t.Fatalf("%s: compress/gzip: %v", name, err)
					}
					if round == 0 && len(tc.data) > 0 {
						testRepad(t, name, m, tc.data)
					}
				}
			}
		}
	}
	// Stored chunks of a full block of random bytes plus their headers
	// exceed a member: an error, never a member past MaxMemberSize.
	data := testData(MaxBlockData, 13, false)
	var chunks []byte
	for off := 0; off < len(data); off += 16 {
		chunks, _ = enc.EncodeChunk(chunks, data[off:off+16])
	}
	if m, err := AssembleChunked(nil, chunks, data, len(data), 0); err == nil {
		t.Fatalf("a %d-byte chunked member was built", len(m.Bytes))
	}
}

// TestIncompressibleBlockTooLarge: a block of data deflate cannot shrink
// that no member holds stored (another tool's block size, up to 65,536
// bytes) is an error, not a member whose 16-bit size wrapped; gzfs's
// largest block size still encodes.
func TestIncompressibleBlockTooLarge(t *testing.T) {
	enc, err := NewEncoder(6)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{65280, 65510, 65536} {
		data := testData(n, 3, false)
		m, err := enc.Encode(nil, data, 0)
		if n <= 65280 {
			if err != nil {
				t.Fatalf("%d bytes: %v", n, err)
			}
			if got, err := Decode(nil, m.Bytes); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%d bytes: decode %v", n, err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("%d random bytes: a member of %d bytes, want an error", n, len(m.Bytes))
		}
	}
}
