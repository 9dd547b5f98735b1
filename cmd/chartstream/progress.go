package main

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// newProgress returns a progress bar on stderr when stderr is a terminal,
// and an invisible one otherwise (CI logs and pipes stay clean).
func newProgress(total int64, description string) *progressbar.ProgressBar {
	visible := term.IsTerminal(int(os.Stderr.Fd()))
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
