package main

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressVisible reports whether progress bars show (stderr is a
// terminal), so that a command can skip the work of sizing one.
func progressVisible() bool { return term.IsTerminal(int(os.Stderr.Fd())) }

// newProgress returns a progress bar on stderr when stderr is a terminal,
// and an invisible one otherwise (CI logs and pipes stay clean).
func newProgress(total int64, description string) *progressbar.ProgressBar {
	visible := progressVisible()
	var w io.Writer = os.Stderr
	if !visible {
		w = io.Discard
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetVisibility(visible),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
	)
}
