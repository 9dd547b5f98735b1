package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// faultKind names one kind of injected fault.
type faultKind string

// The faults a chaos run injects.
const (
	// faultKillActiveWorker SIGKILLs the work process holding the relay
	// lease and starts it again a second later.
	faultKillActiveWorker faultKind = "kill-active-worker"
	// faultKillServe SIGKILLs an API process and starts it again.
	faultKillServe faultKind = "kill-serve"
	// faultRestartNATS stops nats-server and starts it on the same port
	// and JetStream store.
	faultRestartNATS faultKind = "restart-nats"
	// faultRestartPostgres restarts PostgreSQL in fast mode.
	faultRestartPostgres faultKind = "restart-postgres"
	// faultStopRedis stops Redis for redisOutage, then starts it.
	faultStopRedis faultKind = "stop-redis"
	// faultKillAll SIGKILLs the `chartstream all` process and starts it
	// again at once (all-sigkill).
	faultKillAll faultKind = "kill-all"
)

// Fault timings.
const (
	restartDelay = time.Second
	redisOutage  = 5 * time.Second
)

// scheduledFault is a fault due at a fraction of the run's duration.
type scheduledFault struct {
	Fraction float64
	At       time.Duration
	Kind     faultKind
}

// faultPlan is the order and timing of the faults, as fractions of the
// duration. The Redis outage comes last but ends well before the load
// does, at the minimum duration too (see minChaosDuration).
var faultPlan = []struct {
	fraction float64
	kind     faultKind
}{
	{0.15, faultKillActiveWorker},
	{0.30, faultKillServe},
	{0.45, faultRestartNATS},
	{0.60, faultKillActiveWorker},
	{0.70, faultRestartPostgres},
	{0.80, faultStopRedis},
}

// faultSchedule returns the faults of a run of duration d, in order.
func faultSchedule(d time.Duration) []scheduledFault {
	out := make([]scheduledFault, len(faultPlan))
	for i, f := range faultPlan {
		out[i] = scheduledFault{Fraction: f.fraction, At: time.Duration(f.fraction * float64(d)).Round(100 * time.Millisecond), Kind: f.kind}
	}
	return out
}

// faultRecord is what happened when a fault was injected.
type faultRecord struct {
	// AtSeconds is the time since the load started.
	AtSeconds float64   `json:"at_s"`
	Kind      faultKind `json:"kind"`
	// Target names the process or service hit.
	Target string `json:"target"`
	// TookSeconds is how long the injection and the restart took.
	TookSeconds float64 `json:"took_s"`
	// Error is why the fault could not be injected; empty when it was.
	Error string `json:"error,omitempty"`
}

// injectFaults runs the schedule from start until done or ctx ends,
// printing each fault to log as it happens.
func (r *chaosRun) injectFaults(ctx context.Context, start time.Time, schedule []scheduledFault) []faultRecord {
	var records []faultRecord
	serveVictim := 0
	for _, f := range schedule {
		if err := sleepCtx(ctx, time.Until(start.Add(f.At))); err != nil {
			break
		}
		begin := time.Now()
		rec := faultRecord{AtSeconds: begin.Sub(start).Seconds(), Kind: f.Kind}
		var err error
		switch f.Kind {
		case faultKillActiveWorker:
			rec.Target, err = r.killActiveWorker(ctx)
		case faultKillServe:
			rec.Target, err = r.restartChild(ctx, r.serves[serveVictim], false)
			serveVictim = 1 - serveVictim
		case faultRestartNATS:
			rec.Target, err = r.restartChild(ctx, r.nats, true)
		case faultRestartPostgres:
			rec.Target = "PostgreSQL (stack)"
			err = r.stack(ctx, "restart-postgres")
		case faultKillAll:
			rec.Target, err = r.restartChild(ctx, r.all, false)
		case faultStopRedis:
			rec.Target = "Redis (stack)"
			if err = r.stack(ctx, "stop-redis"); err == nil {
				_ = sleepCtx(ctx, redisOutage)
				err = r.stack(context.WithoutCancel(ctx), "start-redis")
			}
		}
		rec.TookSeconds = time.Since(begin).Seconds()
		if err != nil {
			rec.Error = err.Error()
		}
		records = append(records, rec)
		r.logf("%7.1fs  %-18s %s%s", rec.AtSeconds, rec.Kind, rec.Target, faultOutcome(rec))
	}
	return records
}

func faultOutcome(rec faultRecord) string {
	if rec.Error != "" {
		return "  FAILED: " + rec.Error
	}
	return fmt.Sprintf("  (back after %.1fs)", rec.TookSeconds)
}

// killActiveWorker SIGKILLs the work process holding the relay lease and
// starts it again after restartDelay.
func (r *chaosRun) killActiveWorker(ctx context.Context) (string, error) {
	i, err := r.lease.wait(ctx, 15*time.Second)
	if err != nil {
		return "active work process", err
	}
	r.lease.killed(i)
	return r.restartChild(ctx, r.workers[i], false)
}

// restartChild SIGKILLs c (or, graceful, stops it with SIGTERM), waits
// restartDelay and starts it again; a nats-server is waited for until it
// accepts connections. The `all` process is started again at once, as the
// issue's supervisor did, and waited for until its /readyz answers.
func (r *chaosRun) restartChild(ctx context.Context, c *child, graceful bool) (string, error) {
	target := fmt.Sprintf("%s (pid %d)", c.name, c.pid())
	if graceful {
		c.stop(10 * time.Second)
	} else {
		c.kill()
	}
	if c != r.all {
		if err := sleepCtx(ctx, restartDelay); err != nil {
			return target, err
		}
	}
	if err := c.start(); err != nil {
		return target, err
	}
	switch c {
	case r.nats:
		return target, waitTCP(ctx, r.natsAddr, 30*time.Second)
	case r.all:
		if err := waitReady(ctx, r.allBase, startTimeout, c.exited); err != nil {
			return target, fmt.Errorf("%w (see %s)", err, c.logPath)
		}
	}
	return target, nil
}

// stack runs the stack script with one command, in chaos's own
// environment: CS_LOCAL_DIR and the CS_*_PORT settings pass through, so the
// script acts on the stack chaos runs on.
func (r *chaosRun) stack(ctx context.Context, command string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.cfg.StackScript, command)
	cmd.Env = os.Environ()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = io.Discard, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", r.cfg.StackScript, command, err, strings.TrimSpace(lastLine(out.String())))
	}
	return nil
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
