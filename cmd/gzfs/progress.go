package main

import (
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressMin is the input size from which pack, unpack and fsck show a
// progress bar (when stderr is a terminal and -q is not given).
const progressMin = 64 << 20

// progress is a progress bar on stderr, or nothing. A nil *progress is valid
// and does nothing, so callers never test whether a bar is shown.
type progress struct {
	bar *progressbar.ProgressBar
}

// newProgress returns a byte-counting bar for total bytes, or nil when quiet,
// when stderr is not a terminal or when total is small or unknown (< 0).
func newProgress(desc string, total int64, quiet bool) *progress {
	if quiet || total < progressMin || !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	return &progress{bar: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

// add advances the bar by n bytes.
func (p *progress) add(n int64) {
	if p != nil {
		p.bar.Add64(n)
	}
}

// set moves the bar to n bytes done.
func (p *progress) set(n int64) {
	if p != nil {
		p.bar.Set64(n)
	}
}

// done removes the bar from the terminal.
func (p *progress) done() {
	if p != nil {
		p.bar.Finish()
	}
}
