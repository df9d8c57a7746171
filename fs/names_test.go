package fs

import "testing"

func TestEntryName(t *testing.T) {
	present := map[string]bool{"x": true, "x.gz": true, "y.gz": true, "d.gz": true}
	exists := func(n string) bool { return present[n] }
	tests := []struct {
		name           string
		regular, isDir bool
		want           string
		wantKind       kind
		hidden         bool
	}{
		{"y.gz", true, false, "y", kindGz, false},
		{"x.gz", true, false, "", 0, true}, // clash: plain x wins
		{"x", true, false, "x", kindPlain, false},
		{".gz", true, false, ".gz", kindPlain, false},
		{"d.gz", false, true, "d.gz", kindDir, false},
		{"l.gz", false, false, "l.gz", kindOther, false},
		{".gzfs", false, true, "", 0, true},
		{".gzfs.gz", true, false, "", 0, true},
		{"a.gz.gz", true, false, "a.gz", kindGz, false},
	}
	for _, tt := range tests {
		got, k, hidden := entryName(tt.name, tt.regular, tt.isDir, exists)
		if hidden != tt.hidden || (!hidden && (got != tt.want || k != tt.wantKind)) {
			t.Errorf("entryName(%q) = %q, %v, %v; want %q, %v, %v", tt.name, got, k, hidden, tt.want, tt.wantKind, tt.hidden)
		}
	}
}

func TestBackingName(t *testing.T) {
	if got := backingName("a", kindGz); got != "a.gz" {
		t.Errorf("gz: %q", got)
	}
	if got := backingName("a.gz", kindGz); got != "a.gz.gz" {
		t.Errorf("gz.gz: %q", got)
	}
	for _, k := range []kind{kindDir, kindPlain, kindOther} {
		if got := backingName("a", k); got != "a" {
			t.Errorf("%v: %q", k, got)
		}
	}
}
