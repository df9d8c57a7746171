package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"time"
)

// indexedGzipScript is what a user of Python's indexed_gzip (Debian's
// python3-indexed-gzip, its default settings: a checkpoint every 1 MiB)
// does for random access to a gzip file: build the full index, then seek
// and read. It prints its version, the build time, the size of the
// exported index and the latency of each random read, as JSON.
const indexedGzipScript = `
import indexed_gzip, json, os, random, sys, time
path, size, n, seed, idx = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
f = indexed_gzip.IndexedGzipFile(path)
t = time.perf_counter()
f.build_full_index()
build = time.perf_counter() - t
f.export_index(idx)
r = random.Random(seed)
lat = []
for i in range(n):
    off = r.randrange(size // 4096 - 1) * 4096
    t = time.perf_counter()
    f.seek(off)
    b = f.read(4096)
    lat.append(time.perf_counter() - t)
    if len(b) != 4096:
        sys.exit("short read at %d" % off)
f.close()
json.dump({"version": indexed_gzip.__version__, "build": build, "index": os.path.getsize(idx), "lat": lat}, sys.stdout)
`

// indexedGzip is what indexedGzipScript measured.
type indexedGzip struct {
	version    string
	build      time.Duration
	indexBytes int64
	lat        []time.Duration
}

// runIndexedGzip measures indexed_gzip on the gzip file at path (size
// bytes uncompressed) with n random 4 KiB reads.
func runIndexedGzip(path string, size int64, n int) (indexedGzip, error) {
	idx, err := os.CreateTemp("", "gzfsbench-*.gzidx")
	if err != nil {
		return indexedGzip{}, err
	}
	idx.Close()
	defer os.Remove(idx.Name())
	cmd := exec.Command("/usr/bin/python3", "-c", indexedGzipScript, path, fmt.Sprint(size), fmt.Sprint(n), "57", idx.Name())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return indexedGzip{}, fmt.Errorf("indexed_gzip (python3-indexed-gzip): %v", err)
	}
	var res struct {
		Version string    `json:"version"`
		Build   float64   `json:"build"`
		Index   int64     `json:"index"`
		Lat     []float64 `json:"lat"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return indexedGzip{}, fmt.Errorf("indexed_gzip output: %v", err)
	}
	r := indexedGzip{version: res.Version, build: time.Duration(res.Build * 1e9), indexBytes: res.Index}
	for _, s := range res.Lat {
		r.lat = append(r.lat, time.Duration(s*1e9))
	}
	return r, nil
}
