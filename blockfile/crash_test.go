package blockfile

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashOp is one step of the crash workload, generated from a seed so that
// parent and child agree on it.
type crashOp struct {
	kind string // "write", "append", "truncate", "sync"
	off  int64
	data []byte
	size int64
}

func crashOps(seed uint64, n int) []crashOp {
	r := rand.New(rand.NewPCG(seed, 7))
	ops := make([]crashOp, 0, n)
	size := int64(0)
	for len(ops) < n {
		switch op := r.IntN(100); {
		case op < 45:
			off := r.Int64N(size + 8192)
			var data []byte
			if r.IntN(3) == 0 {
				data = randomBytes(r, 1+r.IntN(20000))
			} else {
				data = textish(r, 1+r.IntN(20000))
			}
			ops = append(ops, crashOp{kind: "write", off: off, data: data})
			size = max(size, off+int64(len(data)))
		case op < 65:
			data := textish(r, 1+r.IntN(300))
			ops = append(ops, crashOp{kind: "append", off: size, data: data})
			size += int64(len(data))
		case op < 72:
			size = r.Int64N(size + 20000)
			ops = append(ops, crashOp{kind: "truncate", size: size})
		default:
			ops = append(ops, crashOp{kind: "sync"})
		}
	}
	return ops
}

func applyModel(model []byte, op crashOp) []byte {
	if op.kind == "append" {
		op.off = int64(len(model)) // appends land at the end the child sees
	}
	switch op.kind {
	case "write", "append":
		if end := int(op.off) + len(op.data); end > len(model) {
			model = append(model, make([]byte, end-len(model))...)
		}
		copy(model[op.off:], op.data)
	case "truncate":
		if int(op.size) <= len(model) {
			model = model[:op.size]
		} else {
			model = append(model, make([]byte, int(op.size)-len(model))...)
		}
	}
	return model
}

const crashOpsPerRound = 400

// TestCrashChild is the workload the crash test kills; it does nothing
// unless started by TestCrashRecovery.
func TestCrashChild(t *testing.T) {
	path := os.Getenv("GZFS_CRASH_FILE")
	if path == "" {
		t.Skip("run by TestCrashRecovery")
	}
	seed, _ := strconv.ParseUint(os.Getenv("GZFS_CRASH_SEED"), 10, 64)
	start, _ := strconv.Atoi(os.Getenv("GZFS_CRASH_START"))
	progress, err := os.OpenFile(path+".progress", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(path, Options{BlockSize: 8192, Level: 1})
	if err != nil {
		t.Fatal(err)
	}
	ops := crashOps(seed, crashOpsPerRound)
	fmt.Fprintf(progress, "ready\n") // recovered, ops made: the parent's kill timer starts now
	for i, op := range ops[start:] {
		i += start
		fmt.Fprintf(progress, "start %d\n", i)
		switch op.kind {
		case "write":
			_, err = f.WriteAt(op.data, op.off)
		case "append":
			_, err = f.Append(op.data)
		case "truncate":
			err = f.Truncate(op.size)
		case "sync":
			err = f.Sync()
		}
		if err != nil {
			t.Fatalf("op %d %s: %v", i, op.kind, err)
		}
		fmt.Fprintf(progress, "done %d\n", i)
	}
	f.Close()
	time.Sleep(time.Hour) // wait to be killed
}

// readProgress returns the last op whose sync returned and the last op started.
func readProgress(t *testing.T, path string, ops []crashOp) (synced, started int) {
	b, err := os.ReadFile(path + ".progress")
	if errors.Is(err, os.ErrNotExist) {
		return -1, -1 // killed before its first op
	}
	if err != nil {
		t.Fatal(err)
	}
	synced, started = -1, -1
	for _, line := range strings.Split(string(b), "\n") {
		var i int
		if _, err := fmt.Sscanf(line, "done %d", &i); err == nil && ops[i].kind == "sync" {
			synced = i
		}
		if _, err := fmt.Sscanf(line, "start %d", &i); err == nil {
			started = i
		}
	}
	return synced, started
}

func TestCrashRecovery(t *testing.T) {
	rounds := 25
	if testing.Short() {
		rounds = 8
	}
	dir := t.TempDir()
	for round := 0; round < rounds; round++ {
		path := filepath.Join(dir, fmt.Sprintf("crash%d.gz", round))
		seed := uint64(round + 1)
		ops := crashOps(seed, crashOpsPerRound)
		// Created as the mount creates files: a valid (empty) gzip stream
		// from the start, so gzip -t holds even if no block is ever written.
		cf, err := Create(path, 0o644, Options{BlockSize: 8192, Level: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := cf.Close(); err != nil {
			t.Fatal(err)
		}
		// Each round kills the child twice: recovery must also survive a
		// crash of a process that itself started from a recovered file.
		killAt := []time.Duration{time.Duration(20+rand.IntN(150)) * time.Millisecond, time.Duration(20+rand.IntN(150)) * time.Millisecond}
		start := 0
		var model []byte
		for _, wait := range killAt {
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
			cmd.Env = append(os.Environ(), "GZFS_CRASH_FILE="+path,
				fmt.Sprintf("GZFS_CRASH_SEED=%d", seed), fmt.Sprintf("GZFS_CRASH_START=%d", start))
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Kill at a random point of the workload, not of process
			// start-up or of its recovery (slow under -race): wait until
			// the child has opened the file.
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				if b, _ := os.ReadFile(path + ".progress"); bytes.Contains(b, []byte("ready\n")) {
					break
				}
			}
			time.Sleep(wait)
			cmd.Process.Signal(syscall.SIGKILL)
			werr := cmd.Wait()
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("round %d: the child ended before the kill (%v):\n%s", round, werr, out.Bytes())
			}

			synced, started := readProgress(t, path, ops)
			t.Logf("round %d: killed after op %d started, %d synced", round, started, synced)
			// States the file may be in: after the last returned sync, or
			// after any op started since (unsynced changes may or may not be there).
			var states [][]byte
			base := bytes.Clone(model)
			for i := start; i <= synced; i++ {
				base = applyModel(base, ops[i])
			}
			if synced < start {
				synced = start - 1
			}
			states = append(states, bytes.Clone(base))
			cur := base
			for i := synced + 1; i <= started && i < len(ops); i++ {
				cur = applyModel(bytes.Clone(cur), ops[i])
				states = append(states, cur)
			}
			f, err := Open(path, Options{BlockSize: 8192, Level: 1})
			if err != nil {
				t.Fatalf("round %d: reopen after crash: %v", round, err)
			}
			got := make([]byte, f.Size())
			if _, err := f.ReadAt(got, 0); err != nil && len(got) > 0 {
				t.Fatalf("round %d: read after crash: %v", round, err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("gzip", "-t", path).CombinedOutput(); err != nil {
				t.Fatalf("round %d: gzip -t after crash: %v %s", round, err, out)
			}
			if testing.Verbose() {
				for i := synced + 1; i <= started && i < len(ops); i++ {
					t.Logf("unsynced op %d: %s off %d len %d size %d", i, ops[i].kind, ops[i].off, len(ops[i].data), ops[i].size)
				}
				t.Logf("synced state %d bytes, got %d", len(states[0]), len(got))
			}
			checkCrashState(t, round, got, states)
			// Continue the next run of the child from what survived: every
			// op up to the last started one may be there, so start after it.
			model = got
			start = max(start, started+1)
			os.Remove(path + ".progress")
			if start >= len(ops) {
				break
			}
		}
	}
}

// checkCrashState checks that every byte is one the file held in one of the
// states since the last sync, so that nothing synced was lost.
func checkCrashState(t *testing.T, round int, got []byte, states [][]byte) {
	t.Helper()
	minLen, maxLen := len(states[0]), 0
	for _, s := range states {
		minLen, maxLen = min(minLen, len(s)), max(maxLen, len(s))
	}
	if len(got) < minLen || len(got) > maxLen {
		t.Fatalf("round %d: %d bytes after crash; the states since the last sync had %d to %d", round, len(got), minLen, maxLen)
	}
	for p := range got {
		ok := false
		for _, s := range states {
			if p < len(s) && s[p] == got[p] {
				ok = true
				break
			}
		}
		if !ok {
			t.Fatalf("round %d: byte %d is %d, in no state since the last sync (%d states)", round, p, got[p], len(states))
		}
	}
}
