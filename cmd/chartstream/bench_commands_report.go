package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/chartstream/chartstream"
)

// commandsReport is bench commands' result, printed as a table and, with
// --json, as one JSON object.
type commandsReport struct {
	Tenant chartstream.TenantID `json:"tenant_id"`
	// Mode is "phases" or "users"; API is "in-process" or "child".
	Mode        string  `json:"mode"`
	API         string  `json:"api"`
	DurationS   float64 `json:"duration_s"`
	Concurrency int     `json:"concurrency,omitempty"`
	Users       int     `json:"users,omitempty"`
	ThinkS      float64 `json:"think_s,omitempty"`
	// Phases are the phases in order; with --users, one: "users".
	Phases []phaseReport `json:"phases"`
	// TotalPerSec is every answer (whatever its status) per second, with
	// --users: the rate the users achieved.
	TotalPerSec float64 `json:"total_per_sec,omitempty"`
	// TotalOKPerSec is every 2xx answer per second, with --users.
	TotalOKPerSec float64        `json:"total_ok_per_sec,omitempty"`
	Connections   *connReport    `json:"connections,omitempty"`
	History       *historyReport `json:"history,omitempty"`
}

// phaseReport is one phase's figures. Visibility and Lag are measured in
// the mixed phase and with --users.
type phaseReport struct {
	Phase      string            `json:"phase"`
	Seconds    float64           `json:"duration_s"`
	Ops        []opReport        `json:"ops"`
	Visibility *visibilityReport `json:"commit_to_visible,omitempty"`
	Lag        *lagReport        `json:"projection_lag,omitempty"`
}

// printCommandsReport prints r as tables.
func printCommandsReport(out io.Writer, r commandsReport) {
	load := fmt.Sprintf("%d clients back to back", r.Concurrency)
	if r.Mode == "users" {
		load = fmt.Sprintf("%d users, think %gs (exponential)", r.Users, r.ThinkS)
	}
	fmt.Fprintf(out, "bench commands: %s, API %s, tenant %s\n", load, r.API, r.Tenant)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "phase\top\t2xx/s\tp50 ms\tp95 ms\tp99 ms\t2xx\terrors\trefusals\tnon-2xx")
	for _, p := range r.Phases {
		for _, op := range p.Ops {
			fmt.Fprintf(w, "%s\t%s\t%.1f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%d\t%s\n", p.Phase, op.Op, op.OKPerSec, op.P50Ms, op.P95Ms, op.P99Ms,
				op.OK, op.Errors, op.Refusals, statusCounts(op.Statuses))
		}
	}
	_ = w.Flush()
	for _, p := range r.Phases {
		if v := p.Visibility; v != nil {
			fmt.Fprintf(out, "%s: commit -> visible (observation list, no token, %d probed): p50 %.1f ms, p99 %.1f ms, max %.1f ms; over 1 s: %d (not seen in 30 s: %d); not probed (too many in flight): %d; failed polls: %d\n",
				p.Phase, v.Samples, v.P50Ms, v.P99Ms, v.MaxMs, v.Over1s, v.NotSeen, v.Dropped, v.PollErrors)
		}
		if l := p.Lag; l != nil {
			fmt.Fprintf(out, "%s: projection lag (%d samples, 1/s): events max %.0f, p99 %.0f; seconds max %.2f, p99 %.2f; failed samples: %d\n",
				p.Phase, l.Samples, l.MaxEvents, l.P99Events, l.MaxSeconds, l.P99Seconds, l.Errors)
		}
	}
	if c := r.Connections; c != nil {
		fmt.Fprintf(out, "users: %.1f requests/s answered in all, %.1f of them 2xx; %d users, %d connections opened, at most %d open at once\n",
			r.TotalPerSec, r.TotalOKPerSec, c.Users, c.Dialed, c.PeakOpen)
	}
	if h := r.History; h != nil {
		fmt.Fprintf(out, "loading cost vs history (seeded and projected in %.1f s):\n", h.SeedSeconds)
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "events in stream\tPOSTs\tmedian ms\tfirst ms\terrors")
		for _, s := range h.Sizes {
			fmt.Fprintf(w, "%d\t%d\t%.2f\t%.2f\t%d\n", s.Events, s.Posts, s.MedianMs, s.FirstMs, s.Errors)
		}
		_ = w.Flush()
		if n := len(h.Sizes); n > 1 {
			fmt.Fprintf(out, "median %d : %d = %.2f (target <= 1.5 for 100000 : 10)\n", h.Sizes[n-1].Events, h.Sizes[0].Events, h.Ratio)
		}
	}
}

// statusCounts renders non-2xx counts as "429×3 500×1", "-" for none.
func statusCounts(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
