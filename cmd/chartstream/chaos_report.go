package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// commandRow is one line of the report's command table: the client's
// outcomes and where the acknowledged commands were found.
type commandRow struct {
	Sent         int `json:"sent"`
	Acknowledged int `json:"acknowledged"`
	InStore      int `json:"in_store"`
	Published    int `json:"published"`
	Projected    int `json:"projected"`
	Refused      int `json:"refused"`
	GaveUp       int `json:"gave_up"`
	Retries      int `json:"retries"`
}

func newCommandRow(o commandOutcomes, t kindTally) commandRow {
	return commandRow{Sent: o.Sent, Acknowledged: o.Acknowledged, InStore: t.InStore, Published: t.Published,
		Projected: t.Projected, Refused: o.Refused, GaveUp: o.GaveUp, Retries: o.Retries}
}

func (r commandRow) plus(o commandRow) commandRow {
	return commandRow{Sent: r.Sent + o.Sent, Acknowledged: r.Acknowledged + o.Acknowledged, InStore: r.InStore + o.InStore,
		Published: r.Published + o.Published, Projected: r.Projected + o.Projected, Refused: r.Refused + o.Refused,
		GaveUp: r.GaveUp + o.GaveUp, Retries: r.Retries + o.Retries}
}

// verifyResult is the outcome of one of the verify subcommands.
type verifyResult struct {
	// Status is ok, discrepancies, error (it could not run) or not
	// available (the binary has no such command).
	Status   string `json:"status"`
	ExitCode int    `json:"exit_code"`
	// Detail is its last line on stderr, when it did not pass.
	Detail string `json:"detail,omitempty"`
	// Output is its JSON output, when it printed one.
	Output json.RawMessage `json:"output,omitempty"`
}

// settleResult says how the wait for the pipeline ended.
type settleResult struct {
	Seconds float64 `json:"seconds"`
	// CaughtUp is true when every acknowledged command became visible
	// everywhere; false when the wait gave up without progress, or
	// TimedOut, when --settle after the load had passed (all-sigkill).
	CaughtUp bool `json:"caught_up"`
	TimedOut bool `json:"timed_out,omitempty"`
}

// paceResult is the rate a paced load aimed at and the one it achieved,
// over the load's duration, in commands a second.
type paceResult struct {
	Target       float64 `json:"target_per_s"`
	Sent         float64 `json:"sent_per_s"`
	Acknowledged float64 `json:"acknowledged_per_s"`
}

// chaosReport is the outcome of a chaos run.
type chaosReport struct {
	Scenario        chaosScenario `json:"scenario"`
	Tenant          string        `json:"tenant"`
	DurationSeconds float64       `json:"duration_s"`
	Clients         int           `json:"clients"`
	RunDir          string        `json:"run_dir"`
	// Pace is set when the load was paced (all-sigkill).
	Pace   *paceResult   `json:"pace,omitempty"`
	Faults []faultRecord `json:"faults"`
	// StreamRead says where the stream was read from, when not live from
	// the run's own nats-server.
	StreamRead string                     `json:"stream_read,omitempty"`
	Commands   map[commandKind]commandRow `json:"commands"`
	Lost       lostTally                  `json:"lost"`
	Duplicated duplicateTally             `json:"duplicated"`
	OutOfOrder int                        `json:"out_of_order"`
	// Observations is set when the scenario compares the counts
	// (all-sigkill); they must be equal.
	Observations      *observationCount `json:"observations,omitempty"`
	Examples          []string          `json:"examples,omitempty"`
	Settle            settleResult      `json:"settle"`
	RelayVerify       verifyResult      `json:"relay_verify"`
	ProjectionsVerify verifyResult      `json:"projections_verify"`
	// Failures names every reason the run failed; Pass is true when there
	// is none.
	Failures []string `json:"failures"`
	Pass     bool     `json:"pass"`
}

// judge fills Failures and Pass.
func (r *chaosReport) judge() {
	r.Failures = []string{}
	fail := func(format string, args ...any) { r.Failures = append(r.Failures, fmt.Sprintf(format, args...)) }
	if r.Lost.Commands > 0 {
		fail("%d acknowledged commands lost", r.Lost.Commands)
	}
	if n := r.Duplicated.Total(); n > 0 {
		fail("%d duplicated", n)
	}
	if r.OutOfOrder > 0 {
		fail("%d out of order", r.OutOfOrder)
	}
	if o := r.Observations; o != nil && o.gap() > 0 {
		fail("observations: %d in the event store, %d in the read model", o.Store, o.ReadModel)
	}
	for _, f := range r.Faults {
		if f.Error != "" {
			fail("fault %s not injected", f.Kind)
		}
	}
	if r.RelayVerify.Status != verifyOK {
		fail("relay verify %s", r.RelayVerify.Status)
	}
	if r.ProjectionsVerify.Status != verifyOK {
		fail("projections verify %s", r.ProjectionsVerify.Status)
	}
	r.Pass = len(r.Failures) == 0
}

// failureSummary is the failures on one line.
func (r *chaosReport) failureSummary() string { return strings.Join(r.Failures, "; ") }

// write prints the report as a table or as one JSON object.
func (r *chaosReport) write(w io.Writer, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "chaos run: scenario %s, tenant %s, %.0fs, %d clients, logs in %s\n", r.Scenario, r.Tenant, r.DurationSeconds, r.Clients, r.RunDir)
	if p := r.Pace; p != nil {
		fmt.Fprintf(tw, "pace: %.0f commands/s wanted, %.1f/s sent, %.1f/s acknowledged\n", p.Target, p.Sent, p.Acknowledged)
	}
	if r.StreamRead != "" {
		fmt.Fprintf(tw, "stream: %s\n", r.StreamRead)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "FAULT\tAT\tTARGET\tRESULT")
	if len(r.Faults) == 0 {
		fmt.Fprintln(tw, "(none)\t\t\t")
	}
	for _, f := range r.Faults {
		fmt.Fprintf(tw, "%s\t%.1fs\t%s\t%s\n", f.Kind, f.AtSeconds, f.Target, strings.TrimSpace(faultOutcome(f)))
	}
	fmt.Fprintln(tw, "\nCOMMAND\tSENT\tACKNOWLEDGED\tIN STORE\tPUBLISHED\tPROJECTED\tREFUSED\tGAVE UP\tRETRIES")
	var total commandRow
	for _, k := range commandKinds {
		c := r.Commands[k]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", k, c.Sent, c.Acknowledged, c.InStore, c.Published, c.Projected, c.Refused, c.GaveUp, c.Retries)
		total = total.plus(c)
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n\n", total.Sent, total.Acknowledged, total.InStore, total.Published, total.Projected, total.Refused, total.GaveUp, total.Retries)
	fmt.Fprintf(tw, "lost\t%d\t(absent from event store %d, stream %d, read models %d)\n", r.Lost.Commands, r.Lost.Store, r.Lost.Stream, r.Lost.ReadModels)
	fmt.Fprintf(tw, "duplicated\t%d\t(event store %d, stream %d, read models %d)\n", r.Duplicated.Total(), r.Duplicated.Store, r.Duplicated.Stream, r.Duplicated.ReadModels)
	fmt.Fprintf(tw, "out of order\t%d\n", r.OutOfOrder)
	settle := "caught up"
	switch {
	case r.Settle.TimedOut:
		settle = "gave up: --settle after the load"
	case !r.Settle.CaughtUp:
		settle = "gave up: no progress"
	}
	fmt.Fprintf(tw, "settle\t%.1fs\t%s\n", r.Settle.Seconds, settle)
	for _, v := range []struct {
		name string
		verifyResult
	}{{"relay verify", r.RelayVerify}, {"projections verify", r.ProjectionsVerify}} {
		detail := v.Status
		if v.Detail != "" {
			detail += ": " + v.Detail
		}
		fmt.Fprintf(tw, "%s\texit %d\t%s\n", v.name, v.ExitCode, detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if o := r.Observations; o != nil {
		fmt.Fprintf(w, "observations: %d in the event store, %d in the read model\n", o.Store, o.ReadModel)
	}
	for _, e := range r.Examples {
		fmt.Fprintf(w, "  %s\n", e)
	}
	if r.Pass {
		_, err := fmt.Fprintln(w, "\nPASS")
		return err
	}
	_, err := fmt.Fprintf(w, "\nFAIL: %s\n", r.failureSummary())
	return err
}
