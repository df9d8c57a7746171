package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// P13: gzfs on a shared volume (issue 12): a GlusterFS replica-2 volume of
// two local bricks (integration/cluster/gluster.sh), written and read
// through a gzfs mount over it and through the GlusterFS client directly,
// interleaved: sequential write + close of the logs, cold sequential read,
// creation of small files, and the bytes the bricks store. Information
// rows: the issue sets no goal.
func (b *bench) p13() error {
	dir := filepath.Join(cfg.work, "gluster")
	script := filepath.Join("integration", "cluster", "gluster.sh")
	if out, err := exec.Command("bash", script, "up", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("gluster.sh up: %v: %s", err, out)
	}
	defer exec.Command("bash", script, "down", dir).Run()
	client := filepath.Join(dir, "client-a")
	gback, plain := filepath.Join(client, "gzfs"), filepath.Join(client, "plain")
	for _, d := range []string{gback, plain} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	g, err := startGzfs("g13", gback, filepath.Join(cfg.work, "g13-mnt"))
	if err != nil {
		return err
	}
	defer g.unmount()
	data, err := os.ReadFile(b.logs.path)
	if err != nil {
		return err
	}
	gp, pp := filepath.Join(g.mnt, b.logs.name), filepath.Join(plain, b.logs.name)
	ds, err := interleaved(cfg.reps,
		func() (time.Duration, error) { return writeFile(gp, data) },
		func() (time.Duration, error) { return writeFile(pp, data) })
	if err != nil {
		return err
	}
	m := b.logs.name + " (" + mib(b.logs.size) + ")"
	b.add(ratioRow("P13", "GlusterFS replica 2: seq write "+m+", incl. close", "GlusterFS client directly",
		fmt.Sprintf("%.0f MB/s", mbps(b.logs.size, ds[0])), fmt.Sprintf("%.0f MB/s", mbps(b.logs.size, ds[1])),
		ds[1].Seconds()/ds[0].Seconds(), 0, true))
	brick := func(p string) int64 {
		st, err := os.Stat(p)
		if err != nil {
			return -1
		}
		return st.Size()
	}
	gs, ps := brick(filepath.Join(dir, "brick1", "gzfs", b.logs.name+".gz")), brick(filepath.Join(dir, "brick1", "plain", b.logs.name))
	b.add(ratioRow("P13", "GlusterFS replica 2: bytes each brick stores for "+m, "GlusterFS client directly",
		mib(gs), mib(ps), float64(gs)/float64(ps), 0, false))
	ds, err = interleaved(cfg.reps,
		func() (time.Duration, error) {
			if err := g.unmount(); err != nil {
				return 0, err
			}
			if g, err = startGzfs("g13", gback, filepath.Join(cfg.work, "g13-mnt")); err != nil {
				return 0, err
			}
			evict(filepath.Join(gback, b.logs.name+".gz"))
			_, d, err := readFile(gp)
			return d, err
		},
		func() (time.Duration, error) {
			evict(pp)
			_, d, err := readFile(pp)
			return d, err
		})
	if err != nil {
		return err
	}
	b.add(ratioRow("P13", "GlusterFS replica 2: cold seq read "+m, "GlusterFS client directly",
		fmt.Sprintf("%.0f MB/s", mbps(b.logs.size, ds[0])), fmt.Sprintf("%.0f MB/s", mbps(b.logs.size, ds[1])),
		ds[1].Seconds()/ds[0].Seconds(), 0, true))
	n := 300
	if !cfg.quick {
		n = 1000
	}
	block := make([]byte, 4096)
	for i := range block {
		block[i] = "gzfs on a shared volume\n"[i%24]
	}
	round := 0
	create := func(root string) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			round++
			d := filepath.Join(root, fmt.Sprintf("small-%d", round))
			if err := os.Mkdir(d, 0o755); err != nil {
				return 0, err
			}
			t0 := time.Now()
			for i := 0; i < n; i++ {
				if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%04d", i)), block, 0o644); err != nil {
					return 0, err
				}
			}
			return time.Since(t0), nil
		}
	}
	if ds, err = interleaved(cfg.reps, create(g.mnt), create(plain)); err != nil {
		return err
	}
	b.add(ratioRow("P13", fmt.Sprintf("GlusterFS replica 2: create+write 4 KiB+close, %d files", n), "GlusterFS client directly",
		fmt.Sprintf("%.0f files/s", float64(n)/ds[0].Seconds()), fmt.Sprintf("%.0f files/s", float64(n)/ds[1].Seconds()),
		ds[1].Seconds()/ds[0].Seconds(), 0, true))
	return nil
}
