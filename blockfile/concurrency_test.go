package blockfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// word is the 8-byte value stored at word index i by writer version v: any
// reader can tell whether a word is in the right place.
func word(i int64, v uint64) uint64 { return uint64(i) | v<<40 }

func fillWords(b []byte, first int64, v uint64) {
	for j := 0; j+8 <= len(b); j += 8 {
		binary.LittleEndian.PutUint64(b[j:], word(first+int64(j/8), v))
	}
}

// TestConcurrentReadersAndWriter runs readers (ReadAt and ReadVec) in
// parallel with a writer that appends, overwrites in the middle and
// flushes; every word a reader sees must be one written for that position.
func TestConcurrentReadersAndWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.gz")
	f, err := Create(path, 0o644, Options{BlockSize: 8192, Level: 1, Cache: NewCache(64 << 10), Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 1))
			buf := make([]byte, 20000)
			var seqOff int64
			for !stop.Load() {
				size := f.Size() / 8 * 8
				if size == 0 {
					continue
				}
				off := rng.Int64N(size) / 8 * 8
				length := 8 * (1 + rng.IntN(len(buf)/8))
				if seed == 0 { // a sequential reader: read-ahead runs too
					off = seqOff % size
					seqOff = off + int64(length)
				}
				var n int
				var err error
				if rng.IntN(2) == 0 {
					n, err = f.ReadAt(buf[:length], off)
				} else {
					// The blocks of a Vec must keep their bytes while
					// it is held, however the cache turns over.
					var v Vec
					n, err = f.ReadVec(buf[:length], off, &v)
					time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
					got := buf[:0:0]
					for _, s := range v.Slices {
						got = append(got, s...)
					}
					v.Release()
					if len(got) != n {
						errs <- fmt.Errorf("ReadVec: %d bytes in the slices, n %d", len(got), n)
						return
					}
					copy(buf, got)
				}
				if err != nil && !errors.Is(err, io.EOF) {
					errs <- err
					return
				}
				for j := 0; j+8 <= n; j += 8 {
					w := binary.LittleEndian.Uint64(buf[j:])
					if want := (off + int64(j)) / 8; w&(1<<40-1) != uint64(want) {
						errs <- errors.New("reader saw a word out of place")
						return
					}
				}
			}
		}(uint64(r))
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for v := uint64(1); v < 400; v++ {
		size := f.Size()
		if rng.IntN(3) == 0 || size == 0 {
			b := make([]byte, 8*(1+rng.IntN(3000)))
			fillWords(b, size/8, v)
			if _, err := f.Append(b); err != nil {
				t.Fatal(err)
			}
		} else {
			off := rng.Int64N(size) / 8 * 8
			b := make([]byte, min(8*int64(1+rng.IntN(2000)), size-off))
			fillWords(b, off/8, v)
			if _, err := f.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
		}
		if v%10 == 0 {
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
