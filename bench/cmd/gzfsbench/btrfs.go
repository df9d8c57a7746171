package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// btrfsPeer is the kernel's own transparent compression: a btrfs
// filesystem on a loop device (a sparse image in the work directory)
// mounted with compress-force=ALGO.
type btrfsPeer struct {
	label, opt string
	img, mnt   string
	goals      bool // the goals are judged against this one
}

// startBtrfs makes and mounts the btrfs peers (zlib:6 is judged, zstd:3 is
// information).
func startBtrfs() ([]*btrfsPeer, error) {
	for _, c := range []string{"mkfs.btrfs", "compsize", "losetup"} {
		if _, err := exec.LookPath(c); err != nil {
			return nil, fmt.Errorf("%s is needed for the btrfs peer (bench/run.sh installs btrfs-progs and btrfs-compsize): %v", c, err)
		}
	}
	size := int64(2 << 30)
	if !cfg.quick {
		size = 4 << 30
	}
	var peers []*btrfsPeer
	for _, p := range []*btrfsPeer{
		{label: "btrfs compress-force=zlib:6", opt: "zlib:6", goals: true},
		{label: "btrfs compress-force=zstd:3", opt: "zstd:3"},
	} {
		name := "btrfs-" + strings.ReplaceAll(p.opt, ":", "")
		p.img, p.mnt = filepath.Join(cfg.work, name+".img"), filepath.Join(cfg.work, name)
		exec.Command("umount", p.mnt).Run() // a leftover of a killed run
		os.Remove(p.img)
		if err := os.WriteFile(p.img, nil, 0o600); err != nil {
			return peers, err
		}
		if err := os.Truncate(p.img, size); err != nil {
			return peers, err
		}
		if out, err := exec.Command("mkfs.btrfs", "-q", "-f", p.img).CombinedOutput(); err != nil {
			return peers, fmt.Errorf("mkfs.btrfs: %v: %s", err, out)
		}
		if err := os.MkdirAll(p.mnt, 0o755); err != nil {
			return peers, err
		}
		if out, err := exec.Command("mount", "-o", "loop,compress-force="+p.opt, p.img, p.mnt).CombinedOutput(); err != nil {
			return peers, fmt.Errorf("mount btrfs (loop device): %v: %s", err, out)
		}
		peers = append(peers, p)
	}
	return peers, nil
}

func (p *btrfsPeer) stop() {
	if out, err := exec.Command("umount", p.mnt).CombinedOutput(); err != nil {
		logf("umount %s: %v: %s", p.mnt, err, out)
		exec.Command("umount", "-l", p.mnt).Run()
	}
	os.Remove(p.img)
}

// storedBytes is the disk usage of path on btrfs, from compsize.
func storedBytes(path string) (int64, error) {
	out, err := exec.Command("compsize", "-b", path).Output()
	if err != nil {
		return 0, fmt.Errorf("compsize %s: %v", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[0] == "TOTAL" {
			return strconv.ParseInt(f[2], 10, 64)
		}
	}
	return 0, fmt.Errorf("compsize %s: no TOTAL line in %q", path, out)
}

// writeSync writes data to p and fsyncs it (the time includes both).
func writeSync(p string, data []byte) (time.Duration, error) { return writeFileSync(p, data, true) }

// P12: gzfs against the kernel's transparent compression (issue 11):
// sequential write + fsync, cold sequential read, stored size and cold
// random 4 KiB reads, on both corpora, interleaved with btrfs
// compress-force=zlib:6 (judged) and zstd:3 (information).
func (b *bench) p12() error {
	logLines, readBytes := 0, int64(0)
	defer func() {
		// Nothing is logged per request (go-fuse's splice fallback once
		// logged a line per 1 MiB read).
		r := infoRow("P12", fmt.Sprintf("daemon log lines during the cold reads above (%s)", mib(readBytes)), fmt.Sprint(logLines))
		r.goal, r.result, r.score = "0", "PASS", 1
		if logLines > 0 {
			r.result, r.score = "MISS", 0.5
		}
		b.add(r)
	}()
	peers, err := startBtrfs()
	defer func() {
		for _, p := range peers {
			p.stop()
		}
	}()
	if err != nil {
		return err
	}
	for _, c := range []corpus{b.src, b.logs} {
		data, err := os.ReadFile(c.path)
		if err != nil {
			return err
		}
		gp := filepath.Join(b.gmnt(), c.name)
		fns := []func() (time.Duration, error){func() (time.Duration, error) { return writeSync(gp, data) }}
		for _, p := range peers {
			fns = append(fns, func() (time.Duration, error) { return writeSync(filepath.Join(p.mnt, c.name), data) })
		}
		ds, err := interleaved(cfg.reps, fns...)
		if err != nil {
			return err
		}
		b.wrote[c.name] = true
		g := fmt.Sprintf("%.0f MB/s", mbps(c.size, ds[0]))
		for i, p := range peers {
			b.add(ratioRow("P12", "seq write + fsync "+c.name+" ("+mib(c.size)+"), level 6", p.label, g,
				fmt.Sprintf("%.0f MB/s", mbps(c.size, ds[i+1])), ds[i+1].Seconds()/ds[0].Seconds(), goal(p, 2), true))
		}
		// Stored size.
		gst, err := os.Stat(filepath.Join(b.gback(), c.name+".gz"))
		if err != nil {
			return err
		}
		for _, p := range peers {
			syscall_sync()
			sb, err := storedBytes(filepath.Join(p.mnt, c.name))
			if err != nil {
				return err
			}
			b.add(ratioRow("P12", "stored / logical "+c.name, p.label,
				fmt.Sprintf("%.3f", float64(gst.Size())/float64(c.size)), fmt.Sprintf("%.3f", float64(sb)/float64(c.size)),
				float64(gst.Size())/float64(sb), goal(p, 1), false))
		}
		// Cold sequential read, with gzfs cat of the same file (the
		// pipeline without FUSE) and how busy the two cores are.
		gz := filepath.Join(b.gback(), c.name+".gz")
		busy := 0.0
		fns = []func() (time.Duration, error){func() (time.Duration, error) {
			if err := b.remountG(); err != nil {
				return 0, err
			}
			evict(gz)
			lines0 := countLines(b.g.log)
			cpu0 := readCPU()
			_, d, err := readFile(gp)
			busy = max(busy, cpuBusy(cpu0, readCPU()))
			logLines += countLines(b.g.log) - lines0
			readBytes += c.size
			return d, err
		}, func() (time.Duration, error) {
			evict(gz)
			return timeCmd("", "", cfg.gzfs, "cat", gz)
		}, func() (time.Duration, error) {
			evict(gz)
			_, d, err := readCmd(cfg.gzfs, "cat", gz)
			return d, err
		}}
		for _, p := range peers {
			fns = append(fns, func() (time.Duration, error) {
				evict(filepath.Join(p.mnt, c.name))
				_, d, err := readFile(filepath.Join(p.mnt, c.name))
				return d, err
			})
		}
		if ds, err = interleaved(cfg.reps, fns...); err != nil {
			return err
		}
		m := "cold seq read " + c.name + " (" + mib(c.size) + ")"
		g = fmt.Sprintf("%.0f MB/s", mbps(c.size, ds[0]))
		for i, p := range peers {
			b.add(ratioRow("P12", m, p.label, g,
				fmt.Sprintf("%.0f MB/s", mbps(c.size, ds[i+3])), ds[i+3].Seconds()/ds[0].Seconds(), goal(p, 1.5), true))
		}
		b.add(ratioRow("P12", m, "gzfs cat (no FUSE) > /dev/null", g, fmt.Sprintf("%.0f MB/s", mbps(c.size, ds[1])), ds[1].Seconds()/ds[0].Seconds(), 1.0, true))
		// What a program gets instead of reading through the mount: the
		// same 1 MiB reads from a pipe fed by gzfs cat.
		b.add(ratioRow("P12", m, "gzfs cat piped to a reader (1 MiB reads)", g, fmt.Sprintf("%.0f MB/s", mbps(c.size, ds[2])), ds[2].Seconds()/ds[0].Seconds(), 0, true))
		b.add(infoRow("P12", m+": CPU busy (both cores)", fmt.Sprintf("%.0f %%", 100*busy)))
	}
	// 1–10 MiB files (many files, each read whole): the mount vs gzfs cat
	// of each backing file.
	if err := b.p12small(); err != nil {
		return err
	}
	// Cold random 4 KiB reads of the logs.
	n := 300
	if !cfg.quick {
		n = 2000
	}
	r := rand.New(rand.NewPCG(66, 67))
	offs := make([]int64, n)
	for i := range offs {
		offs[i] = r.Int64N(b.logs.size/4096-1) * 4096
	}
	randomReads := func(p string, before func() error) ([]time.Duration, error) {
		if err := before(); err != nil {
			return nil, err
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		buf := make([]byte, 4096)
		lat := make([]time.Duration, len(offs))
		for i, o := range offs {
			t0 := time.Now()
			if k, err := f.ReadAt(buf, o); err != nil || k != len(buf) {
				return nil, fmt.Errorf("pread %s at %d: %d, %v", p, o, k, err)
			}
			lat[i] = time.Since(t0)
		}
		return lat, nil
	}
	glat, err := randomReads(filepath.Join(b.gmnt(), b.logs.name), func() error {
		if err := b.remountG(); err != nil {
			return err
		}
		evict(filepath.Join(b.gback(), b.logs.name+".gz"))
		return nil
	})
	if err != nil {
		return err
	}
	m := fmt.Sprintf("random 4 KiB cold reads of %s (%s, %d reads)", b.logs.name, mib(b.logs.size), n)
	for _, p := range peers {
		plat, err := randomReads(filepath.Join(p.mnt, b.logs.name), func() error {
			evict(filepath.Join(p.mnt, b.logs.name))
			return nil
		})
		if err != nil {
			return err
		}
		for _, q := range []struct {
			pct  float64
			goal float64
		}{{50, 0.5}, {99, 0.8}} {
			gv, pv := pct(glat, q.pct), pct(plat, q.pct)
			b.add(ratioRow("P12", fmt.Sprintf("%s: p%.0f", m, q.pct), p.label, us(gv), us(pv),
				float64(gv)/float64(pv), goal(p, q.goal), false))
		}
	}
	return nil
}

// p12small writes files of 1 to 10 MiB through the mount and reads them
// whole, cold, through the mount and with gzfs cat of each backing file.
func (b *bench) p12small() error {
	data, err := os.ReadFile(b.logs.path)
	if err != nil {
		return err
	}
	n := 30
	if cfg.quick {
		n = 10
	}
	dir := filepath.Join(b.gmnt(), "p12small")
	os.RemoveAll(dir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	var names []string
	var total int64
	for i := 0; i < n; i++ {
		size := min(int64(1+i%10)<<20, int64(len(data)))
		off := int64(i) * 997 * 4096 % (int64(len(data)) - size + 1)
		name := fmt.Sprintf("f%02d", i)
		if err := os.WriteFile(filepath.Join(dir, name), data[off:off+size], 0o644); err != nil {
			return err
		}
		names = append(names, name)
		total += size
	}
	back := filepath.Join(b.gback(), "p12small")
	var backs []string
	for _, name := range names {
		backs = append(backs, filepath.Join(back, name+".gz"))
	}
	ds, err := interleaved(cfg.reps, func() (time.Duration, error) {
		if err := b.remountG(); err != nil {
			return 0, err
		}
		evict(backs...)
		var d time.Duration
		for _, name := range names {
			_, di, err := readFile(filepath.Join(dir, name))
			if err != nil {
				return 0, err
			}
			d += di
		}
		return d, nil
	}, func() (time.Duration, error) {
		evict(backs...)
		var d time.Duration
		for _, gz := range backs {
			di, err := timeCmd("", "", cfg.gzfs, "cat", gz)
			if err != nil {
				return 0, err
			}
			d += di
		}
		return d, nil
	})
	if err != nil {
		return err
	}
	b.add(ratioRow("P12", fmt.Sprintf("cold read of %d files of 1–10 MiB (%s in all)", n, mib(total)), "gzfs cat of each",
		fmt.Sprintf("%.0f MB/s", mbps(total, ds[0])), fmt.Sprintf("%.0f MB/s", mbps(total, ds[1])), ds[1].Seconds()/ds[0].Seconds(), 0.9, true))
	return os.RemoveAll(dir)
}

// infoRow is a row with a value and no peer or goal.
func infoRow(id, measure, g string) row {
	return row{id: id, measure: measure, peer: "—", gzfs: g, peerVal: "—", ratio: "—", goal: "—", result: "info"}
}

// countLines counts the lines of a file (0 if it cannot be read).
func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte("\n"))
}

// cpuTimes are the busy and total jiffies of all CPUs (/proc/stat).
type cpuTimes struct{ busy, total int64 }

func readCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var t cpuTimes
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseInt(f, 10, 64)
		t.total += v
		if i != 3 && i != 4 { // idle, iowait
			t.busy += v
		}
	}
	return t
}

// cpuBusy is the share of CPU time spent busy between two readings.
func cpuBusy(a, b cpuTimes) float64 {
	if b.total <= a.total {
		return 0
	}
	return float64(b.busy-a.busy) / float64(b.total-a.total)
}

// goal is g for the judged peer, none (information) for the others.
func goal(p *btrfsPeer, g float64) float64 {
	if p.goals {
		return g
	}
	return 0
}
