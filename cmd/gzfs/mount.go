package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"log/syslog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/gzfs/gzfs/blockfile"
	mountfs "github.com/gzfs/gzfs/fs"
)

const mountUsage = `Usage: gzfs mount [-f] [-o OPTIONS] [--log FILE] BACKING MNT
       gzfs BACKING MNT [-o OPTIONS]           (the form mount.fuse3 runs)

Mounts BACKING at MNT: every regular file P of MNT is stored as BACKING/P.gz,
a block-gzip (BGZF) file any gzip tool reads. Returns once the mount answers;
the daemon keeps serving in the background. Unmount with 'umount MNT' or
'fusermount3 -u MNT'.

  -f            stay in the foreground (logs to stderr; Ctrl-C unmounts)
  -o OPTIONS    comma-separated mount options (below)
  --log FILE    log to FILE (default in the background: syslog)
  -d            debug: log every FUSE request (implies -f)

Options:
  level=N       deflate level 1-9 for new blocks (default 6)
  blocksize=N   block size of new files, 4096-65280 (default 61440)
  cache=MiB     memory for inflated blocks shared by all files (default 64)
  flush=DUR     write the growing tail of a file after DUR (default 3s; 0: only
                at close/fsync)
  idle=DUR      keep a file's engine open DUR after its last close, so that
                reopening it is cheap (default 2s; 0: close at once)
  convert=on-write
                a write open of a plain gzip file (gzip, pigz: read-only
                otherwise) first converts it to BGZF in place (written
                beside it, fsynced, renamed over it); default never
  ro            read-only mount
  allow_other   let other users access the mount (off by default); the
                kernel then checks modes and owners (default_permissions)
  default_permissions
                the kernel checks modes and owners even without allow_other
                (otherwise the daemon's own access to BACKING decides)
  nonempty      allow mounting over a non-empty directory
  log=FILE      same as --log FILE (for fstab)
  cpuprofile=FILE  write a CPU profile of the daemon to FILE until unmount
                (go tool pprof FILE)
  memprofile=FILE  write a heap profile of the daemon to FILE at unmount
                (in use: what the files still open hold then; -sample_index=
                alloc_space: everything allocated since the mount)
  nosuid,nodev,noexec,noatime,nodiratime,sync,dirsync: passed to the kernel
  rw,defaults,auto,noauto,user,nouser,users,_netdev,nofail,suid,dev,exec,
  atime,relatime,async,owner,group,x-*,comment=*: accepted and ignored (fstab)
`

// init turns the command lines of mount helpers into 'gzfs mount ...':
// mount.fuse3 runs "gzfs BACKING MNT -o OPTS" for type fuse.gzfs, and
// mount(8) runs "/sbin/mount.fuse.gzfs BACKING MNT [-sfnv] -o OPTS" when
// that symlink to gzfs exists. The main dispatch is left as it is.
func init() {
	base := filepath.Base(os.Args[0])
	if strings.HasPrefix(base, "mount.") {
		os.Args = append([]string{os.Args[0], "mount", "--helper"}, os.Args[1:]...)
		return
	}
	if len(os.Args) >= 3 && looksLikeBacking(os.Args[1]) {
		os.Args = append([]string{os.Args[0], "mount"}, os.Args[1:]...)
	}
}

// looksLikeBacking tells the first argument of "gzfs BACKING MNT ..." from a
// mistyped command: a path with a slash or an existing directory.
func looksLikeBacking(arg string) bool {
	if _, isCommand := commands[arg]; isCommand || strings.HasPrefix(arg, "-") || arg == "help" {
		return false
	}
	if strings.Contains(arg, "/") {
		return true
	}
	st, err := os.Stat(arg)
	return err == nil && st.IsDir()
}

// mountConfig is the parsed command line of 'gzfs mount'.
type mountConfig struct {
	backing, mnt string
	foreground   bool
	helper       bool // called as mount.fuse.gzfs: -f means "fake"
	fake         bool
	debug        bool
	cpuProfile   string // cpuprofile=FILE: profile the daemon until unmount
	memProfile   string // memprofile=FILE: heap profile at unmount
	logFile      string
	notifyFd     int // internal: the daemon reports readiness here
	allowOther   bool
	kernelPerms  bool // default_permissions: the kernel checks modes
	nonempty     bool
	kernelOpts   []string
	rawOpts      []string // as given, for the daemon's command line
	fs           mountfs.Options
}

// runMount implements 'gzfs mount'.
func runMount(args []string) int {
	cfg, err := parseMountArgs(args)
	if errors.Is(err, errHelp) {
		fmt.Print(mountUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gzfs mount: %v\n", err)
		return 2
	}
	if cfg.fake {
		return 0
	}
	if err := checkMount(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "gzfs mount: %v\n", err)
		reportNotify(cfg, err)
		return 1
	}
	if !cfg.foreground {
		return startDaemon(cfg)
	}
	return serve(cfg)
}

var errHelp = errors.New("help")

// parseMountArgs accepts flags before, between and after the two operands.
func parseMountArgs(args []string) (*mountConfig, error) {
	cfg := &mountConfig{notifyFd: -1}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("option %s needs an argument", a)
			}
			i++
			return args[i], nil
		}
		switch {
		case a == "-h" || a == "--help":
			return nil, errHelp
		case a == "--helper":
			cfg.helper = true
		case a == "-f" && cfg.helper:
			cfg.fake = true
		case a == "-f" || a == "--foreground":
			cfg.foreground = true
		case a == "-d" || a == "--debug":
			cfg.debug, cfg.foreground = true, true
		case cfg.helper && (a == "-s" || a == "-n" || a == "-v"):
		case a == "-t" && cfg.helper:
			if _, err := next(); err != nil {
				return nil, err
			}
		case a == "-o":
			v, err := next()
			if err != nil {
				return nil, err
			}
			cfg.rawOpts = append(cfg.rawOpts, v)
		case strings.HasPrefix(a, "-o"):
			cfg.rawOpts = append(cfg.rawOpts, a[2:])
		case a == "--log":
			v, err := next()
			if err != nil {
				return nil, err
			}
			cfg.logFile = v
		case strings.HasPrefix(a, "--log="):
			cfg.logFile = strings.TrimPrefix(a, "--log=")
		case a == "--notify-fd":
			v, err := next()
			if err != nil {
				return nil, err
			}
			fd, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("--notify-fd: %w", err)
			}
			cfg.notifyFd = fd
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			return nil, fmt.Errorf("unknown flag %s (try 'gzfs mount --help')", a)
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		return nil, fmt.Errorf("need BACKING and MNT, got %d operands (try 'gzfs mount --help')", len(pos))
	}
	cfg.backing, cfg.mnt = pos[0], pos[1]
	for _, o := range cfg.rawOpts {
		if err := cfg.parseOptions(o); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// kernelOptions are passed on to the kernel mount.
var kernelOptions = map[string]bool{
	"nosuid": true, "nodev": true, "noexec": true, "noatime": true, "nodiratime": true,
	"sync": true, "dirsync": true,
}

// ignoredOptions are fstab and mount(8) options that mean nothing to gzfs.
var ignoredOptions = map[string]bool{
	"rw": true, "defaults": true, "auto": true, "noauto": true, "user": true, "nouser": true,
	"users": true, "_netdev": true, "nofail": true, "suid": true, "dev": true, "exec": true,
	"atime": true, "diratime": true, "relatime": true, "strictatime": true, "async": true,
	"owner": true, "group": true,
}

// parseOptions parses one comma-separated -o list.
func (cfg *mountConfig) parseOptions(list string) error {
	for _, o := range strings.Split(list, ",") {
		key, val, hasVal := strings.Cut(strings.TrimSpace(o), "=")
		var err error
		switch {
		case key == "":
		case key == "level" && hasVal:
			cfg.fs.Level, err = strconv.Atoi(val)
			if err == nil && (cfg.fs.Level < 1 || cfg.fs.Level > 9) {
				err = errors.New("must be 1-9")
			}
		case key == "blocksize" && hasVal:
			cfg.fs.BlockSize, err = strconv.Atoi(val)
			if err == nil && (cfg.fs.BlockSize < blockfile.MinBlockSize || cfg.fs.BlockSize > blockfile.MaxBlockSize) {
				err = fmt.Errorf("must be %d-%d", blockfile.MinBlockSize, blockfile.MaxBlockSize)
			}
		case key == "cache" && hasVal:
			var mib int64
			mib, err = strconv.ParseInt(val, 10, 64)
			if err == nil && (mib < 1 || mib > 1<<30) {
				err = errors.New("must be from 1 to 1073741824 (MiB)")
			}
			cfg.fs.CacheBytes = mib << 20
		case key == "flush" && hasVal:
			cfg.fs.FlushInterval, err = parseInterval(val)
		case key == "idle" && hasVal:
			cfg.fs.IdleTimeout, err = parseInterval(val)
		case key == "convert" && hasVal:
			switch val {
			case "on-write":
				cfg.fs.ConvertOnWrite = true
			case "never":
				cfg.fs.ConvertOnWrite = false
			default:
				err = errors.New("must be on-write or never")
			}
		case key == "ro" && !hasVal:
			cfg.fs.ReadOnly = true
		case key == "allow_other" && !hasVal:
			cfg.allowOther = true
		case key == "default_permissions" && !hasVal:
			cfg.kernelPerms = true
		case key == "nonempty" && !hasVal:
			cfg.nonempty = true
		case key == "log" && hasVal:
			cfg.logFile = val
		case key == "cpuprofile" && hasVal:
			cfg.cpuProfile = val
		case key == "memprofile" && hasVal:
			cfg.memProfile = val
		case key == "debug" && !hasVal:
			cfg.debug, cfg.foreground = true, true
		case kernelOptions[key] && !hasVal:
			cfg.kernelOpts = append(cfg.kernelOpts, key)
		case ignoredOptions[key], strings.HasPrefix(key, "x-"), key == "comment":
		default:
			return fmt.Errorf("unknown mount option %q (try 'gzfs mount --help')", o)
		}
		if err != nil {
			return fmt.Errorf("mount option %q: %v", o, err)
		}
	}
	return nil
}

// parseInterval reads a duration ("2s", "500ms"; a bare number is seconds;
// 0 or "off" disables the timer).
func parseInterval(s string) (time.Duration, error) {
	if s == "off" || s == "0" {
		return -1, nil
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n <= 0 {
			return -1, nil
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return -1, nil
	}
	return d, nil
}

// checkMount refuses bad input before anything is mounted.
// deadMountError says that mnt is at or under a mount whose daemon is gone,
// and names that mount (a parent of mnt, when mnt is inside it) to clean.
func deadMountError(mnt string) error {
	at, err := mountPointOf(mnt)
	if err != nil || at == "" || at == "/" {
		at = mnt
	}
	where := "there"
	if at != mnt {
		where = "at " + at
	}
	return fmt.Errorf("mount point %s: a dead mount is left %s (Transport endpoint is not connected; the daemon was killed); clean it with: fusermount3 -u %s", mnt, where, at)
}

func checkMount(cfg *mountConfig) error {
	var err error
	if cfg.backing, err = filepath.Abs(cfg.backing); err != nil {
		return err
	}
	if cfg.mnt, err = filepath.Abs(cfg.mnt); err != nil {
		return err
	}
	// statfs always reaches a FUSE daemon (stat may be answered from cache).
	var sfs unix.Statfs_t
	if err := unix.Statfs(cfg.mnt, &sfs); err == unix.ENOTCONN {
		return deadMountError(cfg.mnt)
	}
	st, err := os.Stat(cfg.backing)
	switch {
	case err != nil:
		return fmt.Errorf("backing directory %s: %w", cfg.backing, unwrapPath(err))
	case !st.IsDir():
		return fmt.Errorf("backing directory %s: not a directory", cfg.backing)
	}
	// The daemon opens the backing directory O_PATH, which needs no
	// permission: without this check it would mount and fail every ls.
	need, what := uint32(unix.R_OK|unix.X_OK|unix.W_OK), "readable, searchable and writable"
	if cfg.fs.ReadOnly {
		need, what = unix.R_OK|unix.X_OK, "readable and searchable"
	}
	if err := unix.Access(cfg.backing, need); err != nil {
		return fmt.Errorf("backing directory %s: not %s by this user: %w", cfg.backing, what, err)
	}
	st, err = os.Stat(cfg.mnt)
	switch {
	case errors.Is(err, syscall.ENOTCONN):
		return deadMountError(cfg.mnt)
	case err != nil:
		return fmt.Errorf("mount point %s: %w", cfg.mnt, unwrapPath(err))
	case !st.IsDir():
		return fmt.Errorf("mount point %s: not a directory", cfg.mnt)
	}
	rb, _ := filepath.EvalSymlinks(cfg.backing)
	rm, _ := filepath.EvalSymlinks(cfg.mnt)
	if rb != "" && rm != "" && (rm == rb || strings.HasPrefix(rm, rb+"/")) {
		return fmt.Errorf("mount point %s is inside the backing directory %s", cfg.mnt, cfg.backing)
	}
	if mounted, err := isMountPoint(rm); err == nil && mounted {
		return fmt.Errorf("mount point %s: already mounted (unmount it first: umount %s)", cfg.mnt, cfg.mnt)
	}
	if !cfg.nonempty {
		f, err := os.Open(cfg.mnt)
		if err != nil {
			return fmt.Errorf("mount point %s: %w", cfg.mnt, unwrapPath(err))
		}
		names, _ := f.Readdirnames(1)
		f.Close()
		if len(names) > 0 {
			return fmt.Errorf("mount point %s is not empty (use -o nonempty to mount over it)", cfg.mnt)
		}
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("/dev/fuse is not usable (%v): load the fuse module or give the container the device", unwrapPath(err))
	}
	var fst unix.Stat_t
	err = unix.Fstat(int(f.Fd()), &fst)
	f.Close()
	if err != nil || fst.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(fst.Rdev) != 10 || unix.Minor(fst.Rdev) != 229 {
		return fmt.Errorf("/dev/fuse is not the FUSE device (character device 10:229)")
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// isMountPoint reports whether dir is a mount point in /proc/self/mountinfo.
func isMountPoint(dir string) (bool, error) {
	at, err := mountPointOf(dir)
	return at == dir, err
}

// mountPointOf returns the mount point that holds path: path itself or
// the nearest of its parents in /proc/self/mountinfo.
func mountPointOf(path string) (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	best := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) <= 4 {
			continue
		}
		at := unescapeMountinfo(fields[4])
		if len(at) > len(best) && (at == path || at == "/" || strings.HasPrefix(path, at+"/")) {
			best = at
		}
	}
	return best, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// startDaemon re-executes gzfs in the foreground in a new session and waits
// until it reports that the mount answers (or why it failed).
func startDaemon(cfg *mountConfig) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gzfs mount: cannot find my executable: %v\n", err)
		return 1
	}
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gzfs mount: %v\n", err)
		return 1
	}
	args := []string{"mount", "-f", "--notify-fd", "3"}
	for _, o := range cfg.rawOpts {
		args = append(args, "-o", o)
	}
	if cfg.logFile != "" {
		lf, err := filepath.Abs(cfg.logFile)
		if err == nil {
			cfg.logFile = lf
		}
		args = append(args, "--log", cfg.logFile)
	}
	args = append(args, "--", cfg.backing, cfg.mnt)
	cmd := exec.Command(exe, args...)
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = append(os.Environ(), "GZFS_DAEMON=1")
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "gzfs mount: starting the daemon: %v\n", err)
		return 1
	}
	w.Close()
	msg, _ := io.ReadAll(r)
	r.Close()
	if s := strings.TrimSpace(string(msg)); s == "ok" {
		cmd.Process.Release()
		return 0
	} else if s != "" {
		fmt.Fprintf(os.Stderr, "gzfs mount: %s\n", s)
		cmd.Wait()
		return 1
	}
	err = cmd.Wait()
	fmt.Fprintf(os.Stderr, "gzfs mount: the daemon exited before the mount was ready (%v); see its log\n", err)
	return 1
}

// reportNotify tells the waiting parent why the daemon failed.
func reportNotify(cfg *mountConfig, err error) {
	if cfg.notifyFd < 0 {
		return
	}
	f := os.NewFile(uintptr(cfg.notifyFd), "notify")
	fmt.Fprintln(f, err)
	f.Close()
	cfg.notifyFd = -1
}

// openLog returns the logger of the daemon.
func openLog(cfg *mountConfig) (*slog.Logger, io.Writer, error) {
	var w io.Writer = os.Stderr
	switch {
	case cfg.logFile != "":
		f, err := os.OpenFile(cfg.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
		w = f
	case cfg.notifyFd >= 0:
		if sw, err := syslog.New(syslog.LOG_INFO|syslog.LOG_DAEMON, "gzfs"); err == nil {
			w = sw
			break
		}
		// No syslog (containers, minimal machines): a file rather than
		// nothing, so that a background daemon's errors are not lost.
		path := defaultLogFile(cfg.mnt)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, nil, fmt.Errorf("no syslog, and the default log file %s: %w (use --log FILE)", path, err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("no syslog, and the default log file %s: %w (use --log FILE)", path, err)
		}
		w = f
	}
	return slog.New(slog.NewTextHandler(w, nil)), w, nil
}

// defaultLogFile is where a background daemon logs when there is no
// syslog and no --log: /var/log/gzfs/MNT.log as root, else
// $XDG_STATE_HOME/gzfs/MNT.log (~/.local/state/gzfs/), MNT being the
// mount point with "/" written "-" (as systemd names mount units).
func defaultLogFile(mnt string) string {
	abs, err := filepath.Abs(mnt)
	if err != nil {
		abs = mnt
	}
	name := strings.ReplaceAll(strings.Trim(abs, "/"), "/", "-")
	if name == "" {
		name = "root"
	}
	dir := "/var/log/gzfs"
	if os.Geteuid() != 0 {
		dir = os.Getenv("XDG_STATE_HOME")
		if dir == "" {
			home, _ := os.UserHomeDir()
			dir = filepath.Join(home, ".local", "state")
		}
		dir = filepath.Join(dir, "gzfs")
	}
	return filepath.Join(dir, name+".log")
}

// serve mounts and serves until unmounted or signalled.
func serve(cfg *mountConfig) int {
	// The daemon's signals unmount cleanly: drop any handler that would just
	// exit (main's cleanup of temporary files for the offline commands). A
	// signal that comes while mounting is handled once the mount is up.
	signal.Reset(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	logger, logw, err := openLog(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gzfs mount: %v\n", err)
		reportNotify(cfg, err)
		return 1
	}
	log.SetOutput(logw)
	cfg.fs.Logger = logger
	syscall.Umask(0) // the kernel has applied the caller's umask already
	raiseProcs()

	fsys, err := mountfs.New(cfg.backing, cfg.fs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gzfs mount: %v\n", err)
		reportNotify(cfg, err)
		return 1
	}
	// Keep the daemon's heap near what it needs (the block cache plus a few
	// MiB of blocks in flight) instead of letting the GC double it.
	cacheBytes := cfg.fs.CacheBytes
	if cacheBytes == 0 {
		cacheBytes = 64 << 20
	}
	debug.SetMemoryLimit(cacheBytes + 40<<20)
	// Below that limit, collect when the heap has grown by a quarter, not
	// doubled: almost all of it is pointer-free buffers (blocks, FUSE
	// requests) whose number follows the requests in flight, so a GC is
	// cheap (under 1 % of a core at 1 GB/s of reads, measured), and the
	// peak RSS follows what is live instead of twice it.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
	sec := time.Second
	opts := &fusefs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:   cfg.allowOther,
			Options:      append(permissionOptions(cfg), cfg.kernelOpts...),
			FsName:       cfg.backing,
			Name:         "gzfs",
			MaxWrite:     1 << 20,
			MaxReadAhead: 4 << 20,
			// Asynchronous requests (the kernel's read-ahead) in flight:
			// go-fuse holds a 1 MiB reply buffer for each READ, so this
			// bounds the daemon's memory on a long sequential read; more
			// (64 was tried) read no faster on two cores.
			MaxBackground:        12,
			IgnoreSecurityLabels: true,
			// Every read result is bytes in memory (inflated blocks), never a
			// file descriptor: go-fuse's splice path would only copy them
			// into a pipe first, and for 1 MiB requests it fails (the pipe
			// limit is 1 MiB, header included) with a log line per request.
			DisableSplice: true,
			// Set-ID bits are cleared by gzfs (fs/killpriv.go), so the
			// kernel skips its security.capability lookup per write.
			ExtraCapabilities: mountfs.KillPrivCapability,
			Debug:             cfg.debug,
			Logger:            log.New(logw, "go-fuse: ", 0),
		},
		EntryTimeout:    &sec,
		AttrTimeout:     &sec,
		NullPermissions: true,
		RootStableAttr:  fsys.RootStableAttr(),
		Logger:          log.New(logw, "go-fuse: ", 0),
	}
	if cfg.fs.ReadOnly {
		opts.MountOptions.Options = append(opts.MountOptions.Options, "ro")
	}
	server, err := mountFS(cfg.mnt, fsys, opts)
	if err != nil {
		fsys.Close()
		err = fmt.Errorf("mounting %s: %w", cfg.mnt, err)
		fmt.Fprintf(os.Stderr, "gzfs mount: %v\n", err)
		reportNotify(cfg, err)
		return 1
	}
	raiseReadAhead(cfg.mnt, opts.MountOptions.MaxReadAhead, logger)
	logger.Info("mounted", "backing", cfg.backing, "mnt", cfg.mnt, "pid", os.Getpid())
	if cfg.notifyFd >= 0 {
		f := os.NewFile(uintptr(cfg.notifyFd), "notify")
		fmt.Fprintln(f, "ok")
		f.Close()
	}

	go func() {
		for sig := range sigs {
			logger.Info("signal: flushing and unmounting", "signal", sig.String())
			if err := fsys.FlushAll(); err != nil {
				logger.Error("flush before unmount", "err", err)
			}
			if err := server.Unmount(); err != nil {
				logger.Warn("mount busy: detaching it; open files keep working until closed", "err", err)
				if err := lazyUnmount(cfg.mnt); err != nil {
					logger.Error("lazy unmount", "err", err)
				}
			}
		}
	}()
	stopProfile := startProfile(cfg, logger)
	server.Wait()
	stopProfile()
	signal.Stop(sigs)
	code := 0
	if err := fsys.Close(); err != nil {
		logger.Error("closing files after unmount", "err", err)
		code = 1
	}
	logger.Info("unmounted", "mnt", cfg.mnt)
	return code
}

// mountFS mounts fsys on mnt and starts serving it (fusefs.Mount, with the
// raw file system wrapped by fsys.WrapRaw).
func mountFS(mnt string, fsys *mountfs.FS, opts *fusefs.Options) (*fuse.Server, error) {
	raw := fsys.WrapRaw(fusefs.NewNodeFS(fsys.Root(), opts))
	server, err := fuse.NewServer(raw, mnt, &opts.MountOptions)
	if err != nil {
		return nil, err
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		return nil, err
	}
	return server, nil
}

// lazyUnmount detaches a busy mount (umount -l).
func lazyUnmount(mnt string) error {
	if os.Geteuid() == 0 {
		return unix.Unmount(mnt, unix.MNT_DETACH)
	}
	out, err := exec.Command("fusermount3", "-u", "-z", mnt).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fusermount3 -u -z: %v: %s", err, out)
	}
	return nil
}

// raiseProcs gives the daemon twice as many Go Ps (and so compress and
// inflate workers, blockfile's shared bound) as it has CPUs, unless
// GOMAXPROCS is set. A libdeflate call holds its P for a whole block
// (0.3-1 ms); with one P per CPU all of them were often inside libdeflate,
// and the goroutine that had just read the writer's next FUSE request
// waited for a P while the writer waited for the reply. Measured on 2 CPUs,
// a 400 MiB log written through the mount: 98-121 MB/s with 2 Ps, 123-143
// MB/s with 4 (8: the same), and less daemon CPU; cold reads 0-5 % faster.
func raiseProcs() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(2 * runtime.GOMAXPROCS(0))
	}
}

// startProfile starts the CPU profile asked for with cpuprofile=FILE and
// returns the function that ends it and writes the heap profile asked for
// with memprofile=FILE.
func startProfile(cfg *mountConfig, logger *slog.Logger) func() {
	stopCPU := func() {}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			logger.Error("cpu profile", "err", err)
		} else {
			stopCPU = func() {
				pprof.StopCPUProfile()
				f.Close()
			}
		}
	}
	return func() {
		stopCPU()
		if cfg.memProfile == "" {
			return
		}
		runtime.GC() // the in-use figures are those of the last GC
		f, err := os.Create(cfg.memProfile)
		if err == nil {
			err = errors.Join(pprof.Lookup("heap").WriteTo(f, 0), f.Close())
		}
		if err != nil {
			logger.Error("heap profile", "err", err)
		}
	}
}

// raiseReadAhead lifts the kernel's read-ahead for the mount to maxBytes:
// FUSE can only lower the 128 KiB default at init, and a sequential reader
// of compressed files gains from larger requests (measured: a cold 512 MiB
// read 0.95 s -> 0.78 s at 1 MiB; 4 MiB another 5-10 % once replies were
// copy-free). It needs root (the bdi knob in sysfs); without it
// the default stays.
func raiseReadAhead(mnt string, maxBytes int, logger *slog.Logger) {
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); err != nil {
		return
	}
	knob := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(knob, []byte(strconv.Itoa(maxBytes>>10)), 0); err != nil {
		logger.Debug("read-ahead left at the kernel default", "err", err)
	}
}

// permissionOptions decides who checks permissions. With allow_other the
// callers are other users than the daemon's, so the kernel checks modes,
// owners and groups against the caller (default_permissions). Without it
// the kernel lets in only the user who mounted, whose credentials the
// daemon has: its own access to the backing tree is the check, as for
// sshfs or go-fuse's loopback, and the kernel saves a GETATTR of the
// directory before each change (its attributes are dropped at every
// change). -o default_permissions asks for the kernel's check anyway.
func permissionOptions(cfg *mountConfig) []string {
	if cfg.allowOther || cfg.kernelPerms {
		return []string{"default_permissions"}
	}
	return nil
}
