package main

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	dir := testDir(t)
	src := writeFile(t, dir, "in", []byte("data"))
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"pack"},
		{"pack", "--nope", src},
		{"pack", "-l", "0", src},
		{"pack", "-l", "10", src},
		{"pack", "--level", "x", src},
		{"pack", "-b", "4095", src},
		{"pack", "-b", "65281", src},
		{"pack", "-b", "1M", src},
		{"pack", "-p", "-1", src},
		{"pack", src, "a", "b"},
		{"unpack"},
		{"unpack", src},
		{"unpack", "-x", src + ".gz"},
		{"cat"},
		{"cat", "--offset", "abc", src},
		{"cat", "--length", "-5", src},
		{"cat", "a.gz", "b.gz"},
		{"fsck"},
		{"fsck", "--bogus", "a.gz"},
		{"stats"},
		{"index", "--gzi"},
		{"index", "--gzi", "--gzidx", src},
	} {
		r := gzfs(t, nil, args...)
		if r.code != 2 {
			t.Errorf("gzfs %q: exit %d, want 2 (stderr %q)", args, r.code, r.stderr)
		}
		if len(args) > 0 && args[0] != "bogus" && !bytes.HasPrefix(r.stderr, []byte("gzfs "+args[0]+": ")) {
			t.Errorf("gzfs %q: stderr %q does not start with 'gzfs %s: '", args, r.stderr, args[0])
		}
		if lines := strings.Count(string(r.stderr), "\n"); len(args) > 0 && lines != 1 {
			t.Errorf("gzfs %q: stderr has %d lines, want 1: %q", args, lines, r.stderr)
		}
	}
	// The flag is named as it was typed.
	for flag, want := range map[string]string{"--nope": "unknown flag --nope", "-x": "unknown flag -x", "--offset": "flag --offset needs a value"} {
		if r := gzfs(t, nil, "cat", flag); !strings.Contains(string(r.stderr), want) {
			t.Errorf("gzfs cat %s: stderr %q, want %q", flag, r.stderr, want)
		}
	}
}

func TestOutOfRangeIsOneLine(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"pack", "-l", "10", "x"}, {"pack", "-b", "100", "x"}} {
		r := gzfs(t, nil, args...)
		if r.code != 2 || strings.Count(string(r.stderr), "\n") != 1 {
			t.Errorf("gzfs %q: exit %d, stderr %q; want exit 2 and one line", args, r.code, r.stderr)
		}
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"pack", "unpack", "cat", "fsck", "stats", "index"} {
		for _, h := range []string{"--help", "-h"} {
			r := gzfs(t, nil, cmd, h)
			if r.code != 0 || !bytes.HasPrefix(r.stdout, []byte("usage: gzfs "+cmd)) {
				t.Errorf("gzfs %s %s: exit %d, stdout %.40q", cmd, h, r.code, r.stdout)
			}
		}
	}
	if r := gzfs(t, nil, "--help"); r.code != 0 || !bytes.Contains(r.stdout, []byte("gzfs pack")) {
		t.Errorf("gzfs --help: exit %d, stdout %.60q", r.code, r.stdout)
	}
}

func TestRuntimeErrorsAreOneLine(t *testing.T) {
	t.Parallel()
	dir := testDir(t)
	notGzip := writeFile(t, dir, "plain.gz", []byte("this is not gzip at all, just text\n"))
	missing := filepath.Join(dir, "missing.gz")
	for _, args := range [][]string{
		{"cat", missing},
		{"cat", notGzip},
		{"unpack", notGzip, filepath.Join(dir, "out")},
		{"stats", missing},
		{"fsck", missing},
		{"index", "--gzi", missing},
		{"pack", dir},
	} {
		r := gzfs(t, nil, args...)
		if r.code != 1 {
			t.Errorf("gzfs %q: exit %d, want 1 (stderr %q)", args, r.code, r.stderr)
		}
		if !bytes.HasPrefix(r.stderr, []byte("gzfs "+args[0]+": ")) || strings.Count(string(r.stderr), "\n") != 1 {
			t.Errorf("gzfs %q: stderr %q, want one line starting 'gzfs %s: '", args, r.stderr, args[0])
		}
	}
}

func TestPlainGzipHasNoLayout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(textData(1000))
	zw.Close()
	p := writeFile(t, dir, "plain.gz", b.Bytes())
	// stats describes it (a plain gzip file, its checkpoint index state);
	// --gzi (htslib's BGZF index) has nothing to export.
	if r := gzfs(t, nil, "stats", p); r.code != 0 || !bytes.Contains(r.stdout, []byte("gzip, not BGZF")) ||
		!bytes.Contains(r.stdout, []byte("checkpoint index: missing")) {
		t.Errorf("gzfs stats on plain gzip: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := gzfs(t, nil, "index", "--gzi", p); r.code != 1 || !bytes.Contains(r.stderr, []byte("not BGZF")) {
		t.Errorf("gzfs index --gzi on plain gzip: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, ".gzfs")); err == nil {
		t.Error("a sidecar store was created next to a plain gzip file")
	}
}

// TestRaiseProcs: the daemon runs twice as many Ps as CPUs unless
// GOMAXPROCS says otherwise (see raiseProcs).
func TestRaiseProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	t.Setenv("GOMAXPROCS", "")
	os.Unsetenv("GOMAXPROCS")
	runtime.GOMAXPROCS(3)
	raiseProcs()
	if got := runtime.GOMAXPROCS(0); got != 6 {
		t.Errorf("GOMAXPROCS unset: %d Ps, want 6", got)
	}
	t.Setenv("GOMAXPROCS", "3")
	runtime.GOMAXPROCS(3)
	raiseProcs()
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("GOMAXPROCS=3: %d Ps, want 3", got)
	}
}
