package main

import (
	"fmt"
	"html"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

type row struct {
	id, measure, peer string
	gzfs, peerVal     string
	ratio             string
	goal              string
	result            string  // PASS, MISS, info, ERROR
	score             float64 // > 1 is better than the goal; 0: no goal
}

// ratioRow builds a row; higher: the goal is ratio >= goal, else <= goal.
// goal 0 means "reported, no goal".
func ratioRow(id, measure, peer, g, p string, ratio, goal float64, higher bool) row {
	r := row{id: id, measure: measure, peer: peer, gzfs: g, peerVal: p, ratio: fmt.Sprintf("%.2f×", ratio)}
	switch {
	case goal == 0:
		r.goal, r.result = "—", "info"
	case higher:
		r.goal = fmt.Sprintf("≥ %.2f×", goal)
		r.score = ratio / goal
	default:
		r.goal = fmt.Sprintf("≤ %.2f×", goal)
		r.score = goal / ratio
	}
	if goal != 0 {
		r.result = "MISS"
		if r.score >= 1 {
			r.result = "PASS"
		}
	}
	if math.IsNaN(ratio) || math.IsInf(ratio, 0) {
		r.result = "ERROR"
	}
	return r
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if i := strings.IndexByte(l, ':'); i >= 0 {
				return strings.TrimSpace(l[i+1:])
			}
		}
	}
	return "unknown CPU"
}

func kernel() string {
	out, _ := exec.Command("uname", "-r").Output()
	return strings.TrimSpace(string(out))
}

// gitRev names the source the gzfs binary was built from (run.sh builds it
// from the working tree just before the run).
func gitRev() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown commit"
	}
	rev := "commit " + strings.TrimSpace(string(out))
	st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench").Output()
	if err == nil && len(strings.TrimSpace(string(st))) > 0 {
		rev += " plus uncommitted changes"
	}
	return rev
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cell(s string) string { return strings.ReplaceAll(s, "|", "/") }

func (b *bench) markdown(mode string, elapsed time.Duration) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# gzfs benchmark (%s mode)\n\n", mode)
	fmt.Fprintf(&sb, "Produced by `%s` on %s, %s, %d CPUs, Linux %s, %s; gzfs %s built with `-tags libdeflate`; total run %.0f s.\n\n",
		map[string]string{"full": "make bench", "quick": "make bench-quick"}[mode],
		time.Now().UTC().Format("2006-01-02 15:04 MST"), cpuModel(), runtime.NumCPU(), kernel(), runtime.Version(), cfg.rev, elapsed.Seconds())
	fmt.Fprintf(&sb, "Load average at the start: %s, at the end: %s (other work on the machine makes absolute numbers noisy; "+
		"gzfs and its peers are measured interleaved, round after round, so that load changes hit them alike).\n\n", cfg.loadStart, loadavg())
	fmt.Fprintf(&sb, "Ratios are gzfs relative to the peer, measured in the same run (throughput: gzfs/peer, higher is better; "+
		"sizes, latencies and memory: gzfs/peer, lower is better). Throughputs are the best of %d runs. ", cfg.reps)
	if cfg.dropOK {
		sb.WriteString("Cold reads: fresh mount and `echo 3 > /proc/sys/vm/drop_caches` before each run.\n\n")
	} else {
		sb.WriteString("Cold reads: fresh mount and posix_fadvise(DONTNEED) of the backing file (drop_caches not permitted).\n\n")
	}
	fmt.Fprintf(&sb, "Corpora: tar of GOROOT/src (%s), web-server access logs (%s, generated, seed 1), random bytes (%s), ",
		mib(b.src.size), mib(b.logs.size), mib(b.rnd.size))
	fmt.Fprintf(&sb, "%s sparse file (ftruncate through the mount); P4 on %s of access logs packed by `gzfs pack`.\n\n", mib(cfg.bigSparse), mib(cfg.p4Size))
	sb.WriteString("Loopback peers: goals are judged against `bench/cmd/loopback-nopt`, go-fuse's loopback example with FUSE passthrough " +
		"turned off, so that every read and write goes through its daemon as with gzfs. go-fuse's example itself (`example/loopback`) " +
		"registers its files for kernel passthrough when it runs as root on Linux ≥ 6.9, so the kernel reads and writes the backing " +
		"file without the daemon; its rows are shown for information.\n\n")
	sb.WriteString("| id | measure | gzfs | peer | peer value | ratio | goal | result |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, r := range b.rows {
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.id, cell(r.measure), cell(r.gzfs), cell(r.peer), cell(r.peerVal), r.ratio, r.goal, r.result)
	}
	pass, miss, errs := 0, 0, 0
	for _, r := range b.rows {
		switch r.result {
		case "PASS":
			pass++
		case "MISS":
			miss++
		case "ERROR":
			errs++
		}
	}
	fmt.Fprintf(&sb, "\n%d PASS, %d MISS, %d ERROR. Chart: results.svg (bar = how far each ratio is from its goal; right of the line is a pass).\n", pass, miss, errs)
	return sb.String()
}

// svg draws one bar per goal row: score = ratio/goal (or goal/ratio for
// "≤" goals) on a log scale, with the goal at 1.
func (b *bench) svg(mode string) string {
	var rows []row
	for _, r := range b.rows {
		if r.score > 0 {
			rows = append(rows, r)
		}
	}
	const (
		w      = 1100
		left   = 560
		barW   = 380
		rowH   = 24
		top    = 56
		minLog = -1.0 // 0.1×
		maxLog = 1.0  // 10×
	)
	h := top + rowH*len(rows) + 40
	x := func(score float64) float64 {
		l := math.Log10(score)
		l = math.Max(minLog, math.Min(maxLog, l))
		return left + (l-minLog)/(maxLog-minLog)*barW
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&sb, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&sb, `<text x="10" y="22" font-size="16" font-weight="bold">gzfs benchmark (%s mode, %s): ratio relative to goal</text>`+"\n",
		mode, time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&sb, `<text x="10" y="40" fill="#555">bar end = ratio ÷ goal (log scale, goal = 1; for ≤ goals goal ÷ ratio); green PASS, red MISS</text>`+"\n")
	for _, t := range []float64{0.1, 0.25, 0.5, 1, 2, 4, 10} {
		xx := x(t)
		stroke, sw := "#ddd", 1
		if t == 1 {
			stroke, sw = "#000", 2
		}
		fmt.Fprintf(&sb, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="%d"/>`+"\n", xx, top-6, xx, top+rowH*len(rows), stroke, sw)
		fmt.Fprintf(&sb, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%g</text>`+"\n", xx, top+rowH*len(rows)+16, t)
	}
	for i, r := range rows {
		y := top + i*rowH
		label := r.id + " " + r.measure
		if len(label) > 80 {
			label = label[:77] + "..."
		}
		if r.peer != "" {
			label += " vs " + r.peer
		}
		if len([]rune(label)) > 88 {
			label = string([]rune(label)[:85]) + "..."
		}
		fmt.Fprintf(&sb, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+15, html.EscapeString(label))
		color := "#2e9e44"
		if r.result != "PASS" {
			color = "#d33"
		}
		x0, x1 := x(1), x(r.score)
		if x1 < x0 {
			x0, x1 = x1, x0
		}
		fmt.Fprintf(&sb, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x0, y+4, math.Max(x1-x0, 1), rowH-8, color)
		fmt.Fprintf(&sb, `<text x="%d" y="%d" fill="#333">%s (goal %s)</text>`+"\n", left+barW+6, y+15, html.EscapeString(r.ratio), html.EscapeString(r.goal))
	}
	sb.WriteString("</svg>\n")
	return sb.String()
}
