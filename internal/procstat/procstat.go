// Package procstat reads this process's memory figures from
// /proc/self/status, for tests that check what stays resident.
package procstat

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// RssFile is this process's resident file-backed memory in bytes (the
// RssFile line: mapped pages of files, such as a mapped index).
func RssFile(tb testing.TB) int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no RssFile in /proc/self/status")
	return 0
}
