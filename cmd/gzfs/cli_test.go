package main

import (
	"io"
	"slices"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"61440", 61440, true},
		{"60K", 61440, true},
		{"60k", 61440, true},
		{"60KiB", 61440, true},
		{"1M", 1 << 20, true},
		{"2G", 2 << 30, true},
		{"1T", 1 << 40, true},
		{"5B", 5, true},
		{"", 0, false},
		{"K", 0, false},
		{"-1", 0, false},
		{"1.5M", 0, false},
		{"1Q", 0, false},
		{"99999999999T", 0, false},
	} {
		got, err := parseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		ops      []string
		force    bool
		level    int
		wantCode int
		ok       bool
	}{
		{[]string{"a", "b"}, []string{"a", "b"}, false, 6, 0, true},
		{[]string{"-f", "a"}, []string{"a"}, true, 6, 0, true},
		{[]string{"a", "-f", "b"}, []string{"a", "b"}, true, 6, 0, true},
		{[]string{"a", "b", "--force", "--level", "9"}, []string{"a", "b"}, true, 9, 0, true},
		{[]string{"--level=3", "-", "-"}, []string{"-", "-"}, false, 3, 0, true},
		{[]string{"a", "--", "-f"}, []string{"a", "-f"}, false, 6, 0, true},
		{[]string{"--bogus", "a"}, nil, false, 6, exitUsage, false},
		{[]string{"a", "-l", "x"}, nil, false, 6, exitUsage, false},
	} {
		c := newCommand("pack", packUsage, "")
		c.stderr = io.Discard
		var force bool
		level := 6
		c.boolFlag(&force, "f", "force")
		c.intFlag(&level, "l", "level")
		ops, code, ok := c.parse(tc.args)
		if ok != tc.ok || code != tc.wantCode {
			t.Errorf("%q: ok=%v code=%d; want ok=%v code=%d", tc.args, ok, code, tc.ok, tc.wantCode)
			continue
		}
		if ok && (!slices.Equal(ops, tc.ops) || force != tc.force || level != tc.level) {
			t.Errorf("%q: ops=%q force=%v level=%d; want %q %v %d", tc.args, ops, force, level, tc.ops, tc.force, tc.level)
		}
	}
}

func TestHuman(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := human(n); got != want {
			t.Errorf("human(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestChunkSize(t *testing.T) {
	for _, bs := range []int{4096, 61440, 65280} {
		c := chunkSize(bs)
		if c%bs != 0 || c < 4<<20 {
			t.Errorf("chunkSize(%d) = %d: not a large multiple of the block size", bs, c)
		}
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("a\nb\n"); strings.Contains(got, "\n") {
		t.Errorf("oneLine kept a newline: %q", got)
	}
}
