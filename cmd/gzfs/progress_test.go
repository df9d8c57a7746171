package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY returns the master and slave ends of a new pseudo-terminal
// (without one the test skips, and fails when CI is set).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("CI") != "" {
		skip = t.Fatalf
	}
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		skip("no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		skip("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		skip("pty number: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		skip("open pty slave: %v", err)
	}
	return m, s
}

// stderrOnTTY runs gzfs with its stderr on a terminal and returns what the
// terminal showed.
func stderrOnTTY(t *testing.T, args ...string) []byte {
	t.Helper()
	master, slave := openPTY(t)
	defer master.Close()
	cmd := exec.Command(gzfsBin, args...)
	cmd.Stderr = slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var shown bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&shown, master); close(done) }() // ends with EIO when the child exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("gzfs %q: %v", args, err)
	}
	<-done
	return shown.Bytes()
}

func TestProgressBarOnlyOnTerminalForBigInputs(t *testing.T) {
	if testing.Short() {
		t.Skip("packs 65 MiB")
	}
	t.Parallel()
	dir := testDir(t)
	big := writeFile(t, dir, "big", bytes.Repeat(textData(1<<20), 65))
	small := writeFile(t, dir, "small", textData(1<<20))

	if shown := stderrOnTTY(t, "pack", big); !bytes.Contains(shown, []byte("pack")) || !bytes.Contains(shown, []byte("%")) {
		t.Errorf("no progress bar on a terminal for a 65 MiB pack: %q", shown)
	}
	if shown := stderrOnTTY(t, "unpack", "-q", big+".gz", filepath.Join(dir, "big.out")); len(shown) != 0 {
		t.Errorf("unpack -q wrote to the terminal: %q", shown)
	}
	if shown := stderrOnTTY(t, "pack", small); len(shown) != 0 {
		t.Errorf("progress bar for a small input: %q", shown)
	}
	r := gzfs(t, nil, "pack", "-f", big) // stderr is a pipe
	if r.code != 0 || len(r.stderr) != 0 {
		t.Errorf("pack with stderr on a pipe: exit %d, stderr %q", r.code, r.stderr)
	}
}
