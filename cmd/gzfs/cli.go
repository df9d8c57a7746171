package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Exit codes shared by every command.
const (
	exitOK    = 0 // success
	exitFail  = 1 // the command ran and failed (or fsck found damage)
	exitUsage = 2 // bad command line
)

// command holds what every subcommand needs to parse its arguments and
// report errors in one consistent way.
type command struct {
	name  string        // subcommand name, e.g. "pack"
	usage string        // one-line synopsis, without the leading "gzfs "
	help  string        // the option list shown by --help
	flags *flag.FlagSet // one FlagSet per command
	// stderr receives errors and usage lines (os.Stderr; tests replace it).
	stderr io.Writer
}

// newCommand returns a command whose FlagSet reports errors to the caller
// instead of printing and exiting.
func newCommand(name, usage, help string) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &command{name: name, usage: usage, help: help, flags: fs, stderr: os.Stderr}
}

// errUsage marks an error caused by the command line (exit code 2).
type errUsage struct {
	msg       string
	showUsage bool // print the usage line after the message
}

func (e *errUsage) Error() string { return e.msg }

// usageErrorf returns an error for a malformed command line (missing or
// extra operands): the command prints it with its usage line and exits 2.
func usageErrorf(format string, args ...any) error {
	return &errUsage{msg: fmt.Sprintf(format, args...), showUsage: true}
}

// badValuef returns an error for an option value out of range: the command
// prints it on one line and exits 2.
func badValuef(format string, args ...any) error {
	return &errUsage{msg: fmt.Sprintf(format, args...)}
}

// parse parses args GNU style: flags may come before, between or after the
// operands; "--" ends the flags; a lone "-" is an operand (stdin/stdout);
// both -flag and --flag work. It returns the operands, or ok=false with the
// exit code when the command must stop (--help: 0, bad flags: 2).
func (c *command) parse(args []string) (operands []string, code int, ok bool) {
	for {
		err := c.flags.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			c.printHelp(os.Stdout)
			return nil, exitOK, false
		}
		if err != nil {
			return nil, c.usageError(flagError(err, args)), false
		}
		rest := c.flags.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(operands, rest...), exitOK, true
		}
		if len(rest) == 0 {
			return operands, exitOK, true
		}
		operands = append(operands, rest[0])
		args = rest[1:]
	}
}

// printHelp writes the full help text of the command.
func (c *command) printHelp(w io.Writer) {
	fmt.Fprintf(w, "usage: gzfs %s\n", c.usage)
	if c.help != "" {
		fmt.Fprintf(w, "\n%s", c.help)
	}
}

// usageError prints err with the usage line, on one line of stderr, and
// returns exit code 2.
func (c *command) usageError(err error) int {
	fmt.Fprintf(c.stderr, "gzfs %s: %v (usage: gzfs %s; see 'gzfs %s --help')\n",
		c.name, oneLine(err.Error()), c.usage, c.name)
	return exitUsage
}

// flagError rewords the flag package's errors with the flag as the user
// typed it ("--bogus", not "-bogus").
func flagError(err error, args []string) error {
	msg := err.Error()
	for _, p := range []struct{ prefix, say string }{
		{"flag provided but not defined: ", "unknown flag %s"},
		{"flag needs an argument: ", "flag %s needs a value"},
	} {
		name, ok := strings.CutPrefix(msg, p.prefix)
		if !ok {
			continue
		}
		typed := name
		for _, a := range args {
			if b, _, _ := strings.Cut(a, "="); b == name || b == "-"+name {
				typed = b
				break
			}
		}
		return fmt.Errorf(p.say, typed)
	}
	return err
}

// fail prints err as one line on stderr and returns the matching exit code.
func (c *command) fail(err error) int {
	var u *errUsage
	if errors.As(err, &u) {
		if u.showUsage {
			return c.usageError(err)
		}
		fmt.Fprintf(c.stderr, "gzfs %s: %s\n", c.name, oneLine(err.Error()))
		return exitUsage
	}
	fmt.Fprintf(c.stderr, "gzfs %s: %s\n", c.name, oneLine(err.Error()))
	return exitFail
}

// warn prints a one-line message on stderr.
func (c *command) warn(format string, args ...any) {
	fmt.Fprintf(c.stderr, "gzfs %s: %s\n", c.name, oneLine(fmt.Sprintf(format, args...)))
}

// warnFile prints err about path on one line, naming path once: errors of
// the engine and of the os package name it already.
func (c *command) warnFile(path string, err error) {
	if msg := err.Error(); strings.Contains(msg, path) {
		c.warn("%s", msg)
	} else {
		c.warn("%s: %s", path, msg)
	}
}

// oneLine folds a multi-line message (errors.Join) into one line.
func oneLine(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ")
}

// boolFlag registers a boolean option under every given name (e.g. "f", "force").
func (c *command) boolFlag(p *bool, names ...string) {
	for _, n := range names {
		c.flags.BoolVar(p, n, *p, "")
	}
}

// intFlag registers an integer option under every given name.
func (c *command) intFlag(p *int, names ...string) {
	for _, n := range names {
		c.flags.IntVar(p, n, *p, "")
	}
}

// sizeFlag registers a byte-count option (with optional K/M/G/T suffix)
// under every given name.
func (c *command) sizeFlag(p *int64, names ...string) {
	for _, n := range names {
		c.flags.Var((*sizeValue)(p), n, "")
	}
}

// sizeValue is a flag.Value for byte counts such as 4096, 64K, 1M, 2GiB.
type sizeValue int64

func (s *sizeValue) String() string { return strconv.FormatInt(int64(*s), 10) }

func (s *sizeValue) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeValue(n)
	return nil
}

// parseSize parses a non-negative byte count with an optional binary suffix
// (K, M, G, T, optionally followed by "iB" or "B"; case-insensitive).
func parseSize(v string) (int64, error) {
	s := strings.ToUpper(strings.TrimSpace(v))
	s = strings.TrimSuffix(strings.TrimSuffix(s, "IB"), "B")
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			s = s[:n-1]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q", v)
	}
	return n * mult, nil
}
