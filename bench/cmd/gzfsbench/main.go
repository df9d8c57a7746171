// Command gzfsbench is the gzfs benchmark of issue 5: it measures a gzfs
// mount against peers on the same machine in one run (pigz, bgzip, gzip,
// `gzfs cat`, go-fuse's no-compression loopback) and reports ratios, which
// are stable between runs where absolute MB/s are not.
//
// Usage (normally through bench/run.sh or `make bench` / `make bench-quick`):
//
//	gzfsbench --gzfs BIN --loopback BIN [--quick] [--cache DIR] [--out DIR]
//
// It exits non-zero only when something is broken (a mount, a tool, data
// read back differs); a missed goal is reported as MISS, never as failure.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

var cfg struct {
	quick        bool
	cache        string
	out          string
	gzfs         string
	loopback     string
	loopbackNoPT string
	work         string
	reps         int
	only         string

	srcLimit  int64 // GOROOT/src tar: bytes of file data (0: all)
	logsSize  int64
	randSize  int64
	p4Size    int64
	p4Reads   int
	p11Size   int64
	p5Iters   int
	p7Lines   int
	p8Small   int64
	p8Big     int64
	bigSparse int64

	dropOK    bool
	loadStart string
	rev       string
	start     time.Time
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(cfg.start).Seconds(), fmt.Sprintf(format, args...))
}

func mib(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func main() {
	cfg.start = time.Now()
	flag.BoolVar(&cfg.quick, "quick", false, "small sizes, one pass: a CI smoke test (< 3 min on 2 cores)")
	flag.StringVar(&cfg.cache, "cache", "/var/tmp/gzfs-bench", "cache dir for corpora and the mounts' work files")
	flag.StringVar(&cfg.out, "out", "bench", "directory for results.md and results.svg")
	flag.StringVar(&cfg.gzfs, "gzfs", "", "gzfs binary (required)")
	flag.StringVar(&cfg.loopback, "loopback", "", "go-fuse example/loopback binary (required)")
	flag.StringVar(&cfg.loopbackNoPT, "loopback-nopt", "", "bench/cmd/loopback-nopt binary (required)")
	flag.IntVar(&cfg.reps, "reps", 0, "repetitions of each throughput measurement, best kept (default 5; --quick 2)")
	flag.StringVar(&cfg.only, "only", "", "comma-separated ids to run (P1..P13; P6 needs P1), for debugging")
	flag.Parse()
	if cfg.gzfs == "" || cfg.loopback == "" || cfg.loopbackNoPT == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: gzfsbench --gzfs BIN --loopback BIN --loopback-nopt BIN [--quick] [--cache DIR] [--out DIR]")
		os.Exit(2)
	}
	for _, p := range []*string{&cfg.gzfs, &cfg.loopback, &cfg.loopbackNoPT, &cfg.cache, &cfg.out} {
		a, err := filepath.Abs(*p)
		if err != nil {
			fatal(err)
		}
		*p = a
	}
	if cfg.quick {
		cfg.srcLimit = 48 << 20
		cfg.logsSize = 64 << 20
		cfg.randSize = 64 << 20
		cfg.p4Size = 512 << 20
		cfg.p4Reads = 3000
		cfg.p11Size = 128 << 20
		cfg.p5Iters = 1000
		cfg.p7Lines = 200_000
		cfg.p8Small = 256 << 20
		cfg.p8Big = 1 << 30
		if cfg.reps == 0 {
			cfg.reps = 2
		}
	} else {
		cfg.logsSize = 400 << 20
		cfg.randSize = 256 << 20
		cfg.p4Size = 4 << 30
		cfg.p4Reads = 20000
		cfg.p11Size = 1 << 30
		cfg.p5Iters = 5000
		cfg.p7Lines = 1_000_000
		cfg.p8Small = 1 << 30
		cfg.p8Big = 16 << 30
		if cfg.reps == 0 {
			cfg.reps = 5
		}
	}
	cfg.bigSparse = 16 << 30
	cfg.loadStart = loadavg()
	cfg.rev = gitRev()
	debug.SetGCPercent(400)

	// Unmount everything on every exit path: return, fatal, panic, signal.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		logf("signal %v: unmounting", s)
		cleanupMounts()
		os.Exit(128 + int(s.(syscall.Signal)))
	}()
	code := 0
	func() {
		defer func() {
			if r := recover(); r != nil {
				fmt.Fprintf(os.Stderr, "panic: %v\n%s", r, debug.Stack())
				code = 1
			}
			cleanupMounts()
		}()
		code = run()
	}()
	os.Exit(code)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "gzfsbench:", err)
	cleanupMounts()
	os.Exit(1)
}

func want(id string) bool {
	if cfg.only == "" {
		return true
	}
	for _, s := range strings.Split(cfg.only, ",") {
		if strings.EqualFold(strings.TrimSpace(s), id) {
			return true
		}
	}
	return false
}

func run() int {
	mode := "full"
	if cfg.quick {
		mode = "quick"
	}
	logf("gzfsbench %s mode, cache %s, %d CPUs", mode, cfg.cache, runtime.NumCPU())
	for _, tool := range []string{"pigz", "bgzip", "gzip", "fusermount3"} {
		if _, err := exec.LookPath(tool); err != nil {
			fatal(fmt.Errorf("%s not found (bench/run.sh installs it)", tool))
		}
	}
	cfg.dropOK = dropCaches() == nil
	if !cfg.dropOK {
		logf("cannot write /proc/sys/vm/drop_caches: evicting with remounts and posix_fadvise(DONTNEED) instead")
	}

	// One run per mode at a time (CI may start one while a person runs
	// another): the lock is held until exit; runs of the other mode use
	// their own work dir and do not touch this one.
	cfg.work = filepath.Join(cfg.cache, "work-"+mode)
	if err := lockMode(cfg.work + ".lock"); err != nil {
		fatal(err)
	}
	// Work dir: cleaned of a previous run (unmounting anything left there).
	cleanStale(cfg.work)
	if err := os.RemoveAll(cfg.work); err != nil {
		fatal(err)
	}
	if err := os.MkdirAll(cfg.work, 0o755); err != nil {
		fatal(err)
	}

	b := &bench{}
	if err := b.prepare(); err != nil {
		fatal(err)
	}
	steps := []struct {
		id string
		fn func() error
	}{
		{"P1", b.p1}, {"P6", b.p6}, {"P2", b.p2}, {"P3", b.p3}, {"P9", b.p9},
		{"P4", b.p4}, {"P5", b.p5}, {"P7", b.p7}, {"P8", b.p8}, {"P10", b.p10}, {"P11", b.p11}, {"P12", b.p12}, {"P13", b.p13}, {"verify", b.verify},
	}
	failed := false
	for _, s := range steps {
		if s.id != "verify" && !want(s.id) {
			continue
		}
		t0 := time.Now()
		logf("== %s", s.id)
		err := func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
				}
			}()
			return s.fn()
		}()
		if err != nil {
			failed = true
			logf("%s: ERROR: %v", s.id, err)
			b.rows = append(b.rows, row{id: s.id, measure: "error", gzfs: firstLine(err.Error()), result: "ERROR"})
		}
		logf("%s done in %.1fs", s.id, time.Since(t0).Seconds())
	}
	if err := b.unmountAll(); err != nil {
		failed = true
		logf("unmount: %v", err)
		b.rows = append(b.rows, row{id: "unmount", measure: "error", gzfs: firstLine(err.Error()), result: "ERROR"})
	}
	elapsed := time.Since(cfg.start)
	md := b.markdown(mode, elapsed)
	fmt.Println()
	fmt.Print(md)
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.out, "results.md"), []byte(md), 0o644); err != nil {
		fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.out, "results.svg"), []byte(b.svg(mode)), 0o644); err != nil {
		fatal(err)
	}
	logf("wrote %s and %s", filepath.Join(cfg.out, "results.md"), filepath.Join(cfg.out, "results.svg"))
	if failed {
		logf("FAILED: something is broken (see ERROR rows)")
		return 1
	}
	return 0
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "|", "/")
}

// cleanStale unmounts mounts left under dir by a killed run.
func cleanStale(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(b), "\n") {
		fs := strings.Fields(l)
		if len(fs) > 4 {
			mp := unescapeMount(fs[4])
			if strings.HasPrefix(mp, dir+"/") {
				logf("unmounting stale %s", mp)
				if exec.Command("fusermount3", "-u", mp).Run() != nil {
					exec.Command("fusermount3", "-uz", mp).Run()
				}
			}
		}
	}
}

// lockMode takes an exclusive flock on path, waiting for another run of the
// same mode to finish. The descriptor stays open (close-on-exec, so the
// daemons do not inherit it) until the process exits.
func lockMode(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		lockFile = f
		return nil
	}
	logf("another run of this mode holds %s: waiting for it", path)
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	lockFile = f
	return nil
}

var lockFile *os.File

// dropCaches writes back dirty pages and drops the page cache.
func dropCaches() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o644)
}

// evict makes the next read of paths come from disk: drop_caches when
// permitted, else posix_fadvise(DONTNEED) on each path.
func evict(paths ...string) {
	if cfg.dropOK && dropCaches() == nil {
		return
	}
	syscall.Sync()
	for _, p := range paths {
		fadviseDontNeed(p)
	}
}
