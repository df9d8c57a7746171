package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sqliteModes are the journal set-ups the SQLite tests run: the rollback
// journal (created, fsynced and deleted on every commit), WAL (an appended
// log and a MAP_SHARED -shm file), and WAL with the database file itself
// read through mmap.
var sqliteModes = []struct{ name, pragmas string }{
	{"delete", "pragma journal_mode=delete; pragma synchronous=full;"},
	{"wal", "pragma journal_mode=wal; pragma synchronous=full;"},
	{"wal-mmap", "pragma journal_mode=wal; pragma synchronous=full; pragma mmap_size=268435456;"},
}

// sqliteWorkload is a deterministic SQL script: tables with an index,
// transactions of inserts (rows from a few bytes to overflow pages),
// updates and deletes, a rolled-back transaction, then VACUUM (which
// rewrites and truncates the file). It ends with checks whose output is
// compared with the same script run on a plain directory.
func sqliteWorkload(seed uint64, txns int) string {
	r := rand.New(rand.NewPCG(seed, seed+1))
	var b strings.Builder
	b.WriteString("create table t(id integer primary key, k text, v blob);\n")
	b.WriteString("create index tk on t(k);\n")
	next := 1
	for i := 0; i < txns; i++ {
		b.WriteString("begin;\n")
		for j := 0; j < 1+r.IntN(20); j++ {
			fmt.Fprintf(&b, "insert into t values(%d, 'k%d', cast(x'%016x' || zeroblob(%d) as blob));\n",
				next, r.IntN(1000), r.Uint64(), r.IntN(6000))
			next++
		}
		for j := 0; j < r.IntN(5); j++ {
			fmt.Fprintf(&b, "update t set v = cast(x'%016x' || v as blob), k = 'u%d' where id = %d;\n", r.Uint64(), j, 1+r.IntN(next))
		}
		if r.IntN(4) == 0 {
			fmt.Fprintf(&b, "delete from t where id %% %d = %d;\n", 7+r.IntN(20), r.IntN(7))
		}
		if i%17 == 16 {
			b.WriteString("rollback;\n")
		} else {
			b.WriteString("commit;\n")
		}
	}
	b.WriteString("vacuum;\n")
	b.WriteString("pragma integrity_check;\n")
	b.WriteString("select count(*), sum(length(v)), total(id), hex(sha3_query('select * from t order by id')) from t;\n")
	return b.String()
}

// runSQLite runs sqlite3 on db with script on stdin and returns its output.
func runSQLite(t *testing.T, db, script string) string {
	t.Helper()
	cmd := exec.Command("sqlite3", "-bail", db)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s: %v\n%s", db, err, out)
	}
	return string(out)
}

// TestSQLite runs the same SQL workload in each journal mode on the mount
// and on a plain directory: the outputs (integrity_check, counts, a hash of
// every row) and the database files must be the same, byte for byte, and
// the backing file must be what zcat gives back.
func TestSQLite(t *testing.T) {
	m := newMount(t)
	plain := t.TempDir()
	for i, mode := range sqliteModes {
		t.Run(mode.name, func(t *testing.T) {
			script := mode.pragmas + "\n" + sqliteWorkload(uint64(i), 150)
			want := runSQLite(t, filepath.Join(plain, mode.name+".db"), script)
			if !strings.Contains(want, "\nok\n") {
				t.Fatalf("sqlite3 on a plain directory: %s", want)
			}
			if err := os.Mkdir(m.path(mode.name), 0o755); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(mode.name, "x.db")
			if got := runSQLite(t, m.path(db), script); got != want {
				t.Fatalf("sqlite3 on the mount printed\n%s\nwant\n%s", got, want)
			}
			wantDB, err := os.ReadFile(filepath.Join(plain, mode.name+".db"))
			if err != nil {
				t.Fatal(err)
			}
			expectContent(t, m, db, wantDB)
			// A second connection after the first closed: the database
			// opens and checks clean from what was written back.
			m.remount()
			if got := runSQLite(t, m.path(db), "pragma integrity_check;\n"); got != "ok\n" {
				t.Errorf("integrity_check after remount: %s", got)
			}
		})
	}
}

// TestSQLiteCrash kills the daemon with SIGKILL while sqlite3 commits
// transactions of three rows each, in each journal mode: after the mount
// is back, the database checks clean (a hot rollback journal or a WAL is
// recovered from the backing files), every transaction sqlite3 reported
// committed is there, and none is there in part.
func TestSQLiteCrash(t *testing.T) {
	m := newMount(t, "flush=200ms")
	for round, mode := range sqliteModes {
		t.Run(mode.name, func(t *testing.T) {
			if err := os.Mkdir(m.path(mode.name), 0o755); err != nil {
				t.Fatal(err)
			}
			db := m.path(filepath.Join(mode.name, "x.db"))
			runSQLite(t, db, mode.pragmas+"\ncreate table t(n integer, part integer, v blob);\n")
			// stdbuf: sqlite3's stdout is a pipe, and each "c N" line must
			// reach the test as soon as transaction N has committed; -bail:
			// once the mount is gone, sqlite3 stops at the first error
			// rather than printing "c N" after a failed commit.
			cmd := exec.Command("stdbuf", "-oL", "sqlite3", "-bail", db)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() {
				defer stdin.Close()
				io.WriteString(stdin, mode.pragmas+"\n")
				for n := 1; n <= 1000000; n++ {
					var b strings.Builder
					b.WriteString("begin;\n")
					for part := 0; part < 3; part++ {
						fmt.Fprintf(&b, "insert into t values(%d, %d, zeroblob(%d));\n", n, part, (n*7919+part*104729)%9000)
					}
					fmt.Fprintf(&b, "commit;\nselect 'c', %d;\n", n)
					if _, err := io.WriteString(stdin, b.String()); err != nil {
						return
					}
				}
			}()
			committed := make(chan int, 1<<20)
			go func() {
				defer close(committed)
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					if n, ok := strings.CutPrefix(sc.Text(), "c|"); ok {
						if v, err := strconv.Atoi(n); err == nil {
							committed <- v
						}
					}
				}
			}()
			// Let some transactions commit (at least 10, however slow the
			// machine), then kill mid-stream at a moment that varies.
			last := 0
			linger := time.Duration(100+150*round) * time.Millisecond
			var deadline <-chan time.Time
			timeout := time.After(2 * time.Minute)
		wait:
			for {
				select {
				case n, ok := <-committed:
					if !ok {
						t.Fatalf("sqlite3 stopped before the kill: %s", stderr.String())
					}
					last = n
					if last >= 10 && deadline == nil {
						deadline = time.After(linger)
					}
				case <-deadline:
					break wait
				case <-timeout:
					t.Fatalf("only %d transactions committed in 2 minutes", last)
				}
			}
			m.kill()
			for n := range committed {
				last = n
			}
			cmd.Process.Kill()
			cmd.Wait()
			if last < 10 {
				t.Fatalf("only %d transactions committed before the kill", last)
			}
			m.start()
			got := runSQLite(t, db, "pragma integrity_check;\n"+
				"select count(*), max(n), count(distinct n) from t;\n"+
				"select n from t group by n having count(*) != 3 limit 5;\n")
			lines := strings.Split(strings.TrimSpace(got), "\n")
			if len(lines) < 2 || lines[0] != "ok" {
				t.Fatalf("after the kill: %s", got)
			}
			if len(lines) > 2 {
				t.Errorf("transactions present in part after the kill: %v", lines[2:])
			}
			var count, maxN, distinct int
			if _, err := fmt.Sscanf(lines[1], "%d|%d|%d", &count, &maxN, &distinct); err != nil {
				t.Fatalf("after the kill: %q: %v", lines[1], err)
			}
			if maxN < last || distinct != maxN || count != 3*maxN {
				t.Errorf("after the kill: %d rows, max n %d, %d distinct; sqlite3 had reported %d committed", count, maxN, distinct, last)
			}
			t.Logf("%d transactions reported committed before the kill; %d in the database", last, maxN)
		})
	}
	m.unmount()
	files, _ := filepath.Glob(m.bpath("*/*.gz"))
	if len(files) == 0 {
		t.Fatal("no backing files")
	}
	for _, f := range files {
		gzipTest(t, f)
	}
}
