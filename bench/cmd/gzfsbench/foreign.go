package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/gzfs/gzfs/gzindex"
)

// P11: random access to a foreign gzip file (issue 10): a `gzip -6` file of
// access logs put in the backing directory, its checkpoint index built by
// `gzfs index` (timed against `gzip -dc` of the same file), its size, then
// random 4 KiB reads through the mount, and a cold sequential read of it
// through the mount against `gzip -dc` and `pigz -dc`.
func (b *bench) p11() error {
	if !gzindex.Supported {
		return fmt.Errorf("the benchmark must be built with -tags libdeflate (checkpoint indexes need zlib)")
	}
	raw := fmt.Sprintf("p11-access-%dM.log", cfg.p11Size>>20)
	rawPath, err := logs(raw, cfg.p11Size, 5)
	if err != nil {
		return err
	}
	gzPath, err := cached(corpusPath(raw+".gzip6.gz"), func(f *os.File) error {
		cmd := exec.Command("gzip", "-6", "-c", rawPath)
		cmd.Stdout = f
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("gzip -6: %v", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	gb := filepath.Join(b.gback(), "p11.log.gz")
	if err := copyFile(gzPath, gb); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(b.gmnt(), "p11.log"))
	st, err := os.Stat(gb)
	if err != nil {
		return err
	}
	size := cfg.p11Size
	if err := warm(gb); err != nil {
		return err
	}
	// Index build (warm page cache: both CPU-bound) vs gzip -dc.
	ds, err := interleaved(cfg.reps,
		func() (time.Duration, error) {
			if err := removeCheckpoints(b.gback()); err != nil {
				return 0, err
			}
			return timeCmd("", "", cfg.gzfs, "index", "-q", gb)
		},
		func() (time.Duration, error) { return timeCmd("", "", "gzip", "-dc", gb) })
	if err != nil {
		return err
	}
	m := fmt.Sprintf("%s gzip -6 file of logs (%s compressed)", mib(size), mib(st.Size()))
	b.add(ratioRow("P11", "checkpoint index build, "+m, "gzip -dc",
		fmt.Sprintf("%.0f MB/s", mbps(size, ds[0])), fmt.Sprintf("%.0f MB/s", mbps(size, ds[1])), ds[1].Seconds()/ds[0].Seconds(), 1, true))
	var idxBytes int64
	ents, _ := os.ReadDir(filepath.Join(b.gback(), ".gzfs"))
	for _, e := range ents {
		if filepath.Ext(e.Name()) == ".ckp" {
			if fi, err := e.Info(); err == nil {
				idxBytes += fi.Size()
			}
		}
	}
	b.add(ratioRow("P11", "checkpoint index size, "+m, "1 % of the gzip file",
		fmt.Sprintf("%d KiB (%.2f %%)", idxBytes>>10, 100*float64(idxBytes)/float64(st.Size())),
		fmt.Sprintf("%d KiB", st.Size()/100>>10), float64(idxBytes)/(float64(st.Size())/100), 1, false))

	// The same for Python's indexed_gzip (what users of random access to
	// gzip files compare with; rapidgzip is neither in Debian nor reachable
	// here): its index build and size now, its random reads below.
	n := 2000
	if cfg.quick {
		n = 300
	}
	ig, err := runIndexedGzip(gb, size, n)
	if err != nil {
		return err
	}
	igName := "indexed_gzip " + ig.version
	b.add(ratioRow("P11", "checkpoint index build, "+m, igName+" build_full_index",
		fmt.Sprintf("%.0f MB/s", mbps(size, ds[0])), fmt.Sprintf("%.0f MB/s", mbps(size, ig.build)), ig.build.Seconds()/ds[0].Seconds(), 0, true))
	b.add(ratioRow("P11", "checkpoint index size, "+m, igName+" export_index",
		fmt.Sprintf("%d KiB", idxBytes>>10), fmt.Sprintf("%d KiB", ig.indexBytes>>10), float64(idxBytes)/float64(ig.indexBytes), 0, false))

	// Random 4 KiB reads through the mount (fresh mount, backing file warm).
	mp := filepath.Join(b.gmnt(), "p11.log")
	if err := b.remountG(); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(55, 56))
	f, err := os.Open(mp)
	if err != nil {
		return err
	}
	buf := make([]byte, 4096)
	lat := make([]time.Duration, n)
	for i := range lat {
		off := r.Int64N(size/4096-1) * 4096
		t0 := time.Now()
		if k, err := f.ReadAt(buf, off); err != nil || k != len(buf) {
			f.Close()
			return fmt.Errorf("pread %s at %d: %d, %v", mp, off, k, err)
		}
		lat[i] = time.Since(t0)
	}
	f.Close()
	p50, p99 := pct(lat, 50), pct(lat, 99)
	rm := fmt.Sprintf("random 4 KiB reads through the mount, indexed %s", m)
	b.add(ratioRow("P11", rm+": p50", "goal 3 ms", fmt.Sprintf("p50 %s (%d reads)", us(p50), n), "3 ms", float64(p50)/float64(3*time.Millisecond), 1, false))
	b.add(ratioRow("P11", rm+": p99", "goal 10 ms", fmt.Sprintf("p99 %s", us(p99)), "10 ms", float64(p99)/float64(10*time.Millisecond), 1, false))
	ip50, ip99 := pct(ig.lat, 50), pct(ig.lat, 99)
	b.add(ratioRow("P11", rm+": p50", igName+" seek+read in process (index built)", fmt.Sprintf("p50 %s", us(p50)), fmt.Sprintf("p50 %s", us(ip50)), float64(p50)/float64(ip50), 0, false))
	b.add(ratioRow("P11", rm+": p99", igName+" seek+read in process (index built)", fmt.Sprintf("p99 %s", us(p99)), fmt.Sprintf("p99 %s", us(ip99)), float64(p99)/float64(ip99), 0, false))

	// Cold sequential read through the mount vs gzip -dc and pigz -dc.
	peer := func(argv ...string) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			evict(gb)
			return timeCmd("", "", append(argv, gb)...)
		}
	}
	ds, err = interleaved(cfg.reps,
		func() (time.Duration, error) {
			if err := b.remountG(); err != nil {
				return 0, err
			}
			evict(gb)
			k, d, err := readFile(mp)
			if err == nil && k != size {
				err = fmt.Errorf("read %d bytes of %s, want %d", k, mp, size)
			}
			return d, err
		},
		peer("gzip", "-dc"), peer("pigz", "-dc"))
	if err != nil {
		return err
	}
	g := fmt.Sprintf("%.0f MB/s", mbps(size, ds[0]))
	sm := "cold seq read through the mount, indexed " + m
	b.add(ratioRow("P11", sm, "gzip -dc", g, fmt.Sprintf("%.0f MB/s", mbps(size, ds[1])), ds[1].Seconds()/ds[0].Seconds(), 1.8, true))
	b.add(ratioRow("P11", sm, "pigz -dc", g, fmt.Sprintf("%.0f MB/s", mbps(size, ds[2])), ds[2].Seconds()/ds[0].Seconds(), 1.2, true))
	return nil
}

// removeCheckpoints removes the checkpoint indexes in the store of the
// backing directory, so that 'gzfs index' builds anew.
func removeCheckpoints(backing string) error {
	ents, err := os.ReadDir(filepath.Join(backing, ".gzfs"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		if filepath.Ext(e.Name()) == ".ckp" {
			if err := os.Remove(filepath.Join(backing, ".gzfs", e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
