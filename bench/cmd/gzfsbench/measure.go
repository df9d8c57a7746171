package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

const ioChunk = 1 << 20

func fadviseDontNeed(p string) {
	f, err := os.Open(p)
	if err != nil {
		return
	}
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	f.Close()
}

// warm reads a file so that it is in the page cache.
func warm(p string) error {
	_, _, err := readFile(p)
	return err
}

// readFile reads p sequentially in 1 MiB reads; the time includes open and
// close.
func readFile(p string) (int64, time.Duration, error) {
	buf := make([]byte, ioChunk)
	t0 := time.Now()
	f, err := os.Open(p)
	if err != nil {
		return 0, 0, err
	}
	var n int64
	for {
		k, err := f.Read(buf)
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			f.Close()
			return n, 0, err
		}
	}
	if err := f.Close(); err != nil {
		return n, 0, err
	}
	return n, time.Since(t0), nil
}

// readCmd runs argv and reads its standard output through a pipe with the
// same 1 MiB reads as readFile: what a program gets from 'gzfs cat FILE | prog'.
func readCmd(argv ...string) (int64, time.Duration, error) {
	buf := make([]byte, ioChunk)
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr limitedBuf
	cmd.Stderr = &stderr
	t0 := time.Now()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	var n int64
	for {
		k, rerr := out.Read(buf)
		n += int64(k)
		if rerr != nil {
			if rerr != io.EOF {
				err = rerr
			}
			break
		}
	}
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("%v: %v: %s", argv, werr, stderr.String())
	}
	if err != nil {
		return n, 0, err
	}
	return n, time.Since(t0), nil
}

// writeFile creates p with data in 1 MiB writes; the time includes open and
// close (close flushes a gzfs file to its backing file).
func writeFile(p string, data []byte) (time.Duration, error) { return writeFileSync(p, data, false) }

// writeFileSync is writeFile, with an fsync before the close when sync.
func writeFileSync(p string, data []byte, sync bool) (time.Duration, error) {
	os.Remove(p)
	syscall_sync()
	t0 := time.Now()
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	for off := 0; off < len(data); off += ioChunk {
		if _, err := f.Write(data[off:min(off+ioChunk, len(data))]); err != nil {
			f.Close()
			return 0, err
		}
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return 0, fmt.Errorf("fsync %s: %w", p, err)
		}
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("close %s: %w", p, err)
	}
	return time.Since(t0), nil
}

func syscall_sync() { unix.Sync() }

// timeCmd runs argv with stdin from inPath (or none) and stdout to outPath
// (or /dev/null), and returns its wall time.
func timeCmd(inPath, outPath string, argv ...string) (time.Duration, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	if inPath != "" {
		in, err := os.Open(inPath)
		if err != nil {
			return 0, err
		}
		defer in.Close()
		cmd.Stdin = in
	}
	if outPath == "" {
		outPath = os.DevNull
	}
	out, err := os.Create(outPath)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	cmd.Stdout = out
	var stderr limitedBuf
	cmd.Stderr = &stderr
	t0 := time.Now()
	err = cmd.Run()
	d := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("%v: %v: %s", argv, err, stderr.String())
	}
	return d, nil
}

type limitedBuf struct{ b []byte }

func (l *limitedBuf) Write(p []byte) (int, error) {
	if len(l.b) < 4096 {
		l.b = append(l.b, p[:min(len(p), 4096-len(l.b))]...)
	}
	return len(p), nil
}
func (l *limitedBuf) String() string { return string(l.b) }

// interleaved runs the fns in turn, reps rounds, and keeps each one's
// shortest time: a change of machine load during the run then hits gzfs
// and its peers alike, which keeps their ratio honest.
func interleaved(reps int, fns ...func() (time.Duration, error)) ([]time.Duration, error) {
	bests := make([]time.Duration, len(fns))
	for i := 0; i < reps; i++ {
		for j, fn := range fns {
			d, err := fn()
			if err != nil {
				return nil, err
			}
			if i == 0 || d < bests[j] {
				bests[j] = d
			}
		}
	}
	return bests, nil
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p / 100 * float64(len(s)-1))
	return s[i]
}

func us(d time.Duration) string {
	v := float64(d) / 1e3
	if v < 10 {
		return fmt.Sprintf("%.1f µs", v)
	}
	return fmt.Sprintf("%.0f µs", v)
}

// Stamped data for P8: zeros with the 8-byte offset at the start of every
// 4 KiB page, cheap to produce and to check, and cheap to compress, so the
// run measures the daemon's memory rather than deflate.
func stamp(buf []byte, off int64) {
	clear(buf)
	for i := 0; i+8 <= len(buf); i += 4096 {
		binary.LittleEndian.PutUint64(buf[i:], uint64(off)+uint64(i))
	}
}

func checkStamp(buf []byte, off int64) error {
	for i := 0; i+8 <= len(buf); i += 4096 {
		if v := binary.LittleEndian.Uint64(buf[i:]); v != uint64(off)+uint64(i) {
			return fmt.Errorf("stamp at %d reads %d", off+int64(i), v)
		}
	}
	return nil
}
