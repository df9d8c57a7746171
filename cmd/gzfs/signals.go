package main

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// interrupts runs registered cleanups (removal of temporary files) when the
// process is interrupted, so that Ctrl-C never leaves litter behind. The
// destination of a command is only ever replaced by a rename of a complete
// file, so an interrupt can never leave it half written.
var interrupts struct {
	sync.Mutex
	once sync.Once
	next int
	fns  map[int]func()
}

// guardCreate runs create, which makes something on disk and returns how to
// remove it, with interrupts held off, and registers the removal to run if
// the process receives SIGINT, SIGTERM or SIGHUP before release is called.
// A signal arriving while create runs waits for it, so nothing created is
// ever missed. The first call installs the signal handler: commands that
// never call it (mount, with its own handling) keep the default behaviour.
func guardCreate(create func() (cleanup func(), err error)) (release func(), err error) {
	interrupts.once.Do(handleInterrupts)
	interrupts.Lock()
	defer interrupts.Unlock()
	cleanup, err := create()
	if err != nil {
		return nil, err
	}
	if interrupts.fns == nil {
		interrupts.fns = make(map[int]func())
	}
	id := interrupts.next
	interrupts.next++
	interrupts.fns[id] = cleanup
	return func() {
		interrupts.Lock()
		defer interrupts.Unlock()
		delete(interrupts.fns, id)
	}, nil
}

// handleInterrupts starts the goroutine that runs the cleanups and exits with
// 128+signal, as a shell reports a process killed by that signal.
func handleInterrupts() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-c
		interrupts.Lock() // never released: the process ends here
		for _, fn := range interrupts.fns {
			fn()
		}
		code := 130
		if n, ok := s.(syscall.Signal); ok {
			code = 128 + int(n)
		}
		os.Exit(code)
	}()
}
