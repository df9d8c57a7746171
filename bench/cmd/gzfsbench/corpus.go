package main

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Corpora are cached under cfg.cache/corpus, named with their size so that
// the quick and full modes keep separate copies. Each is written to a
// temporary name and renamed into place: an interrupted build is redone.

func corpusPath(name string) string { return filepath.Join(cfg.cache, "corpus", name) }

// cached returns path if it exists, else builds it with fn into a temporary
// file and renames it into place.
func cached(path string, fn func(w *os.File) error) (string, error) {
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
		return path, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	t0 := time.Now()
	tmp := fmt.Sprintf("%s.tmp%d", path, os.Getpid())
	f, err := os.Create(tmp)
	if err != nil {
		return "", err
	}
	if err := fn(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return "", fmt.Errorf("build %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	st, _ := os.Stat(path)
	logf("built %s (%s) in %.1fs", path, mib(st.Size()), time.Since(t0).Seconds())
	return path, nil
}

// srcTar is a tar of GOROOT/src in lexical order, cut after limit bytes of
// file data (0: all).
func srcTar(limit int64) (string, error) {
	name := "goroot-src.tar"
	if limit > 0 {
		name = fmt.Sprintf("goroot-src-%dM.tar", limit>>20)
	}
	return cached(corpusPath(name), func(f *os.File) error {
		root := filepath.Join(runtime.GOROOT(), "src")
		bw := bufio.NewWriterSize(f, 1<<20)
		tw := tar.NewWriter(bw)
		var total int64
		stop := fmt.Errorf("limit")
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.Type().IsRegular() && !d.IsDir() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(filepath.Dir(root), p)
			h, err := tar.FileInfoHeader(info, "")
			if err != nil {
				return err
			}
			h.Name = rel
			h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
			h.ModTime = info.ModTime().Truncate(time.Second)
			h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
			h.Format = tar.FormatPAX
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			n, err := io.Copy(tw, src)
			src.Close()
			if err != nil {
				return err
			}
			total += n
			if limit > 0 && total >= limit {
				return stop
			}
			return nil
		})
		if err != nil && err != stop {
			return err
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// Web-server access logs (combined log format), deterministic.

type logGen struct {
	r     *rand.Rand
	t     int64 // unix seconds
	ips   []string
	paths []string
	uas   []string
	refs  []string
	zipfI *rand.Zipf
	zipfP *rand.Zipf
}

func newLogGen(seed uint64) *logGen {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := &logGen{r: r, t: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Unix()}
	for i := 0; i < 20000; i++ {
		switch r.IntN(10) {
		case 0:
			g.ips = append(g.ips, fmt.Sprintf("2001:db8:%x:%x::%x", r.IntN(65536), r.IntN(65536), r.IntN(65536)))
		default:
			g.ips = append(g.ips, fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(223), r.IntN(256), r.IntN(256), 1+r.IntN(254)))
		}
	}
	sections := []string{"api/v1/items", "api/v1/users", "api/v2/orders", "static/js", "static/css", "images", "blog", "products", "search", "cart", "account", "docs"}
	exts := []string{"", "", "", ".html", ".json", ".js", ".css", ".png", ".jpg", ".svg"}
	words := strings.Fields("alpha beta gamma delta summer winter shoes shirt blue red green garden kitchen sale new best guide howto release notes install")
	for i := 0; i < 5000; i++ {
		s := sections[r.IntN(len(sections))]
		p := "/" + s + "/"
		switch r.IntN(3) {
		case 0:
			p += strconv.Itoa(r.IntN(100000))
		case 1:
			p += words[r.IntN(len(words))] + "-" + words[r.IntN(len(words))]
		default:
			p += words[r.IntN(len(words))] + "/" + strconv.Itoa(r.IntN(1000))
		}
		p += exts[r.IntN(len(exts))]
		if r.IntN(5) == 0 {
			p += "?page=" + strconv.Itoa(1+r.IntN(50)) + "&sort=" + words[r.IntN(len(words))]
		}
		g.paths = append(g.paths, p)
	}
	g.uas = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		"Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
		"curl/8.5.0",
		"python-requests/2.32.3",
		"Go-http-client/1.1",
		"Prometheus/2.54.1",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
	}
	g.refs = []string{"-", "-", "-", "https://www.google.com/", "https://example.com/", "https://example.com/search?q=shoes", "https://news.ycombinator.com/", "https://example.com/blog/"}
	g.zipfI = rand.NewZipf(r, 1.1, 4, uint64(len(g.ips)-1))
	g.zipfP = rand.NewZipf(r, 1.05, 2, uint64(len(g.paths)-1))
	return g
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

func pad2(b []byte, v int) []byte {
	if v < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, int64(v), 10)
}

// line appends one access-log line. short: common log format plus a
// response time (~120 bytes); otherwise combined log format (~220 bytes).
func (g *logGen) line(b []byte, short bool) []byte {
	r := g.r
	if r.IntN(3) == 0 {
		g.t++
	}
	tm := time.Unix(g.t, 0).UTC()
	b = append(b, g.ips[g.zipfI.Uint64()]...)
	b = append(b, " - - ["...)
	b = pad2(b, tm.Day())
	b = append(b, '/')
	b = append(b, months[tm.Month()-1]...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(tm.Year()), 10)
	b = append(b, ':')
	b = pad2(b, tm.Hour())
	b = append(b, ':')
	b = pad2(b, tm.Minute())
	b = append(b, ':')
	b = pad2(b, tm.Second())
	b = append(b, ` +0000] "`...)
	m := "GET"
	switch x := r.IntN(100); {
	case x < 8:
		m = "POST"
	case x < 10:
		m = "PUT"
	case x < 11:
		m = "DELETE"
	case x < 13:
		m = "HEAD"
	}
	b = append(b, m...)
	b = append(b, ' ')
	b = append(b, g.paths[g.zipfP.Uint64()]...)
	b = append(b, " HTTP/1.1\" "...)
	st := 200
	switch x := r.IntN(1000); {
	case x < 40:
		st = 304
	case x < 60:
		st = 404
	case x < 65:
		st = 500
	case x < 75:
		st = 301
	case x < 80:
		st = 403
	}
	b = strconv.AppendInt(b, int64(st), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(r.ExpFloat64()*8000), 10)
	if short {
		b = append(b, " rt=0."...)
		b = strconv.AppendInt(b, int64(100+r.IntN(900)), 10)
		b = append(b, " req="...)
		b = strconv.AppendUint(b, r.Uint64()>>40, 16)
	} else {
		b = append(b, " \""...)
		b = append(b, g.refs[r.IntN(len(g.refs))]...)
		b = append(b, "\" \""...)
		b = append(b, g.uas[r.IntN(len(g.uas))]...)
		b = append(b, '"')
	}
	return append(b, '\n')
}

// logs writes size bytes (cut at a line end) of combined-format lines.
func logs(name string, size int64, seed uint64) (string, error) {
	return cached(corpusPath(name), func(f *os.File) error {
		return writeLogs(f, size, seed)
	})
}

func writeLogs(w io.Writer, size int64, seed uint64) error {
	g := newLogGen(seed)
	buf := make([]byte, 0, 1<<20)
	var n int64
	for n < size {
		buf = g.line(buf, false)
		if len(buf) > 1<<20-512 {
			if int64(len(buf)) > size-n {
				buf = buf[:size-n]
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
			n += int64(len(buf))
			buf = buf[:0]
		}
	}
	return nil
}

// randomFile writes size bytes from a seeded ChaCha8 stream.
func randomFile(size int64) (string, error) {
	return cached(corpusPath(fmt.Sprintf("random-%dM.bin", size>>20)), func(f *os.File) error {
		var seed [32]byte
		copy(seed[:], "gzfs-bench-random-corpus-seed-01")
		c := rand.NewChaCha8(seed)
		buf := make([]byte, 1<<20)
		for n := int64(0); n < size; n += int64(len(buf)) {
			c.Read(buf)
			if _, err := f.Write(buf); err != nil {
				return err
			}
		}
		return nil
	})
}

// sparseFile is a plain sparse file of size bytes (no data blocks).
func sparseFile(size int64) (string, error) {
	return cached(corpusPath(fmt.Sprintf("sparse-%dG", size>>30)), func(f *os.File) error {
		return f.Truncate(size)
	})
}

// gzipSize is the size of `gzip -6 -c path`, cached next to the corpus.
func gzipSize(path string) (int64, error) {
	memo := path + ".gzip6-size"
	if b, err := os.ReadFile(memo); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			return v, nil
		}
	}
	in, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	cmd := exec.Command("gzip", "-6", "-c")
	cmd.Stdin = in
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	n, _ := io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("gzip -6 %s: %w", path, err)
	}
	os.WriteFile(memo, []byte(strconv.FormatInt(n, 10)+"\n"), 0o644)
	return n, nil
}

// gzipSizeOfBytes is the size of `gzip -6` of data given in memory.
func gzipSizeOfBytes(data []byte) (int64, error) {
	cmd := exec.Command("gzip", "-6", "-c")
	cmd.Stdin = strings.NewReader(string(data))
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("gzip -6: %w", err)
	}
	return int64(len(out)), nil
}
