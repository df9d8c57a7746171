package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A FUSE mount started by the benchmark: a gzfs daemon in the foreground
// (-f, so that its PID is ours and VmHWM can be read) or go-fuse's loopback
// example. Every live mount is registered so that cleanup unmounts it on any
// exit path.
type mount struct {
	name string
	back string
	mnt  string
	cmd  *exec.Cmd
	done chan error
	log  string
}

var (
	mountsMu sync.Mutex
	live     = map[*mount]bool{}
)

func startMount(name, back, mnt, logFile string, argv ...string) (*mount, error) {
	for _, d := range []string{back, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if isMounted(mnt) {
		return nil, fmt.Errorf("%s: %s is already mounted", name, mnt)
	}
	lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = lf
	cmd.Stderr = lf
	// Own process group: a Ctrl-C at the terminal reaches the benchmark,
	// which then unmounts in order, rather than killing daemons under it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("%s: start %s: %w", name, argv[0], err)
	}
	m := &mount{name: name, back: back, mnt: mnt, cmd: cmd, done: make(chan error, 1), log: logFile}
	go func() { m.done <- cmd.Wait(); lf.Close() }()
	mountsMu.Lock()
	live[m] = true
	mountsMu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for !isMounted(mnt) {
		select {
		case err := <-m.done:
			m.done <- err
			m.forget()
			return nil, fmt.Errorf("%s: daemon exited before mounting (%v); log %s:\n%s", name, err, logFile, tail(logFile))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.unmount()
			return nil, fmt.Errorf("%s: not mounted after 15 s; log %s:\n%s", name, logFile, tail(logFile))
		}
	}
	return m, nil
}

func startGzfs(name, back, mnt string, opts ...string) (*mount, error) {
	argv := []string{cfg.gzfs, "mount", "-f"}
	if len(opts) > 0 {
		argv = append(argv, "-o", strings.Join(opts, ","))
	}
	argv = append(argv, back, mnt)
	return startMount(name, back, mnt, filepath.Join(cfg.work, name+".log"), argv...)
}

func startLoopback(name, bin, back, mnt string) (*mount, error) {
	return startMount(name, back, mnt, filepath.Join(cfg.work, name+".log"), bin, "-q", mnt, back)
}

func (m *mount) pid() int { return m.cmd.Process.Pid }

func (m *mount) forget() {
	mountsMu.Lock()
	delete(live, m)
	mountsMu.Unlock()
}

// unmount unmounts cleanly (the daemon flushes), waits for the daemon to
// exit, and falls back to a lazy unmount and SIGKILL of our own daemon so
// that no dead mount is left behind.
func (m *mount) unmount() error {
	defer m.forget()
	var firstErr error
	for i := 0; isMounted(m.mnt); i++ {
		out, err := exec.Command("fusermount3", "-u", m.mnt).CombinedOutput()
		if err == nil {
			break
		}
		if i == 20 {
			firstErr = fmt.Errorf("%s: fusermount3 -u: %v: %s", m.name, err, strings.TrimSpace(string(out)))
			exec.Command("fusermount3", "-uz", m.mnt).Run()
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	select {
	case err := <-m.done:
		m.done <- err
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("%s: daemon exit: %v; log %s:\n%s", m.name, err, m.log, tail(m.log))
		}
	case <-time.After(120 * time.Second):
		m.cmd.Process.Kill()
		<-m.done
		if firstErr == nil {
			firstErr = fmt.Errorf("%s: daemon did not exit within 120 s after unmount; killed", m.name)
		}
	}
	if isMounted(m.mnt) {
		exec.Command("fusermount3", "-uz", m.mnt).Run()
	}
	return firstErr
}

// cleanupMounts unmounts everything still registered (error paths, signals).
func cleanupMounts() {
	mountsMu.Lock()
	var ms []*mount
	for m := range live {
		ms = append(ms, m)
	}
	mountsMu.Unlock()
	for _, m := range ms {
		if err := m.unmount(); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
		}
	}
}

func isMounted(mnt string) bool {
	mnt = filepath.Clean(mnt)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 4 && unescapeMount(fs[4]) == mnt {
			return true
		}
	}
	return false
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// vmHWM reads the peak resident set size of a process, in bytes.
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:")), "%d", &kb)
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
