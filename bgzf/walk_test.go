package bgzf

import (
	"bytes"
	"compress/gzip"
	"errors"
	"testing"
)

// stream builds a BGZF stream of n blocks of text and returns it with the
// members' offsets.
func stream(t *testing.T, n int) ([]byte, []int64) {
	enc, _ := NewEncoder(6)
	var b bytes.Buffer
	var offs []int64
	for i := 0; i < n; i++ {
		m, err := enc.Encode(nil, testData(20000, uint64(i), true), 0)
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, int64(b.Len()))
		b.Write(m.Bytes)
	}
	b.Write(EOFMember)
	return b.Bytes(), offs
}

func walk(data []byte) ([]MemberInfo, int64, error) {
	var ms []MemberInfo
	end, err := Walk(bytes.NewReader(data), int64(len(data)), func(m MemberInfo) error {
		ms = append(ms, m)
		return nil
	})
	return ms, end, err
}

func TestWalk(t *testing.T) {
	data, offs := stream(t, 5)
	ms, end, err := walk(data)
	if err != nil || end != int64(len(data)) || len(ms) != 6 {
		t.Fatalf("clean stream: %d members, end %d, %v", len(ms), end, err)
	}
	for i, m := range ms[:5] {
		if m.Offset != offs[i] || m.ISize != 20000 || m.Damaged {
			t.Fatalf("member %d: %+v", i, m)
		}
	}

	// A torn tail is reported where the last whole member ends.
	torn := data[:offs[4]+100]
	_, end, err = walk(torn)
	if !errors.Is(err, ErrTornTail) || end != offs[4] {
		t.Fatalf("torn tail: end %d, %v", end, err)
	}

	// So is a first member cut short (a new file's first write caught by
	// a power loss): the stream is BGZF, with nothing whole before the tear.
	for _, n := range []int64{HeaderSize, 100, offs[1] - 1} {
		if _, end, err = walk(data[:n]); !errors.Is(err, ErrTornTail) || end != 0 {
			t.Fatalf("first member cut at %d: end %d, %v", n, end, err)
		}
	}
	// A plain gzip member cut short is not BGZF.
	var pz bytes.Buffer
	pw := gzip.NewWriter(&pz)
	pw.Write(testData(20000, 9, false))
	pw.Close()
	if _, _, err := walk(pz.Bytes()[:pz.Len()/2]); !errors.Is(err, ErrFormat) {
		t.Fatalf("plain gzip cut short: %v", err)
	}

	// A damaged header in the middle is bridged, not cut.
	bad := bytes.Clone(data)
	bad[offs[2]+16] ^= 0xff // BSIZE
	ms, end, err = walk(bad)
	if err != nil || end != int64(len(bad)) || len(ms) != 6 || !ms[2].Damaged || ms[2].ISize != 20000 || ms[3].Offset != offs[3] {
		t.Fatalf("damaged header: %d members, end %d, %v: %+v", len(ms), end, err, ms)
	}

	// So is a damaged first header, when the rest is BGZF.
	bad = bytes.Clone(data)
	bad[12] = 'X'
	ms, _, err = walk(bad)
	if err != nil || !ms[0].Damaged || ms[1].Offset != offs[1] {
		t.Fatalf("damaged first header: %v %+v", err, ms)
	}

	// Plain gzip and non-gzip are not BGZF.
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(bytes.Repeat([]byte("plain gzip "), 1000))
	w.Close()
	if _, _, err := walk(z.Bytes()); !errors.Is(err, ErrFormat) {
		t.Fatalf("plain gzip: %v", err)
	}
	if _, _, err := walk([]byte("hello, world, not gzip")); !errors.Is(err, ErrFormat) {
		t.Fatalf("not gzip: %v", err)
	}
	// A gzip member of another tool before, among or after BGZF members
	// makes the stream gzip, not BGZF: it is not damage to bridge.
	for name, s := range map[string][]byte{
		"plain first": append(bytes.Clone(z.Bytes()), data...),
		"plain among": append(append(bytes.Clone(data[:offs[2]]), z.Bytes()...), data[offs[2]:]...),
		"plain last":  append(bytes.Clone(data), z.Bytes()...),
	} {
		if _, _, err := walk(s); !errors.Is(err, ErrGzipMember) {
			t.Errorf("%s: %v, want ErrGzipMember", name, err)
		}
	}

	// A long stretch lost (zeros: writeback that never happened) is
	// bridged to the members after it.
	big, offs := stream(t, 40)
	garbled := bytes.Clone(big)
	for p := offs[3]; p < offs[30]; p++ {
		garbled[p] = 0
	}
	if _, _, err := walk(garbled); err != nil {
		t.Fatalf("a long lost stretch: %v", err)
	}
	// Damage that cannot be bridged, far from the end, is an error.
	for p := offs[3]; p < int64(len(garbled)); p++ {
		garbled[p] = 0
	}
	if _, _, err := walk(garbled); !errors.Is(err, ErrDamaged) {
		t.Fatalf("unbridgeable damage: %v", err)
	}
}

// TestMemberStart: what an append of member k cut short leaves, as far as
// it goes, and what another tool's member looks like.
func TestMemberStart(t *testing.T) {
	var m [HeaderSize]byte
	putHeader(m[:], 1000)
	SetBlockNumber(m[:], 7)
	for n := 1; n <= len(m); n++ {
		if !MemberStart(m[:n], 7) {
			t.Errorf("%d bytes of member 7's header: not its start", n)
		}
	}
	if MemberStart(m[:8], 6) || MemberStart(m[:4], 6) != true || MemberStart(nil, 7) || MemberStart([]byte("garbage"), 7) {
		t.Error("MemberStart takes another member's or other bytes for member 7's start")
	}
	if !EOFStart(EOFMember[:17]) || !EOFStart(EOFMember) || EOFStart(m[:17]) || EOFStart(nil) || EOFStart(append(bytes.Clone(EOFMember), 0)) {
		t.Error("EOFStart")
	}
	// A BGZF header whose flag byte lost FEXTRA is damage, not another
	// tool's member.
	flipped := bytes.Clone(m[:])
	flipped[3] = 0
	if _, err := ParseHeader(flipped); !errors.Is(err, ErrFormat) || errors.Is(err, ErrGzipMember) {
		t.Errorf("BGZF header without FEXTRA: %v", err)
	}
	if _, err := ParseHeader([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 'x', 'y', 'z', 0, 0, 0, 0, 0}); !errors.Is(err, ErrGzipMember) {
		t.Errorf("gzip's header: %v", err)
	}
}
