package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/workers"
)

type projectionsBench struct {
	// History is what --seed-events found and added before measuring.
	History             seedReport `json:"history"`
	Rate                int        `json:"rate"`
	Events              int        `json:"events"`
	LagP50Ms            float64    `json:"lag_p50_ms"`
	LagP99Ms            float64    `json:"lag_p99_ms"`
	LagMaxMs            float64    `json:"lag_max_ms"`
	ChartRequests       int        `json:"chart_requests"`
	ChartP50Ms          float64    `json:"chart_get_p50_ms"`
	ChartP99Ms          float64    `json:"chart_get_p99_ms"`
	RebuildEvents       int64      `json:"rebuild_events"`
	RebuildEventsPerSec float64    `json:"rebuild_events_per_sec"`
}

func newBenchProjectionsCmd() *cobra.Command {
	var urls benchURLs
	var redisURL, keyFile string
	var seed seedSpec
	var rate, patients, requests int
	var duration time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "projections [--rate N] [--duration D] [--json]",
		Short: "Commit-to-chart lag at a sustained rate, GET chart latency, rebuild throughput",
		Long: `Runs its own relay and projector (own stream, starting at the event store's head)
and an API server on a loopback port, for a fresh bench tenant. Phase 1 registers
--patients patients, then records vital signs at --rate events/s for --duration and
measures, per event, commit to applied in the read models. Phase 2 sends
--requests GET /v1/patients/{id} and measures their latency. Phase 3 rebuilds
the tenant's read models from the event store.

With --seed-events N, the event store is first filled to hold at least N events
of other tenants' history (--seed-tenants tenants named history-NNN, created if
absent; their read models rebuilt, which is timed and reported too), so the
figures are those of a database with history. Seeding is kept: a second run
with the same N adds nothing.`,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"DATABASE_URL", urls.db}, [2]string{"DATABASE_RELAY_URL", urls.relay},
				[2]string{"DATABASE_ADMIN_URL", urls.admin}, [2]string{"REDIS_URL", redisURL}); err != nil {
				return err
			}
			if rate < 1 || patients < 1 || requests < 1 || duration <= 0 {
				return exitError{2, fmt.Errorf("--rate, --patients, --requests and --duration must be positive")}
			}
			if err := seed.validate(); err != nil {
				return exitError{2, err}
			}
			if seed.Events > 0 && keyFile == "" {
				return exitError{2, fmt.Errorf("--seed-events needs PHI_KEY_FILE (the seeded history is sealed like any other)")}
			}
			history, err := seedHistory(cmd.Context(), cmd.ErrOrStderr(), urls, keyFile, seed)
			if err != nil {
				return err
			}
			r, err := benchProjections(cmd.Context(), cmd.ErrOrStderr(), urls, redisURL, rate, patients, requests, duration)
			if err != nil {
				return err
			}
			r.History = history
			out := cmd.OutOrStdout()
			if seed.Events > 0 {
				history.print(out)
			}
			fmt.Fprintf(out, "commit -> read model: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d events at %d/s)\n", r.LagP50Ms, r.LagP99Ms, r.LagMaxMs, r.Events, r.Rate)
			fmt.Fprintf(out, "GET /v1/patients/{id}: p50 %.2f ms, p99 %.2f ms (%d requests)\n", r.ChartP50Ms, r.ChartP99Ms, r.ChartRequests)
			fmt.Fprintf(out, "rebuild: %.0f events/s (%d events)\n", r.RebuildEventsPerSec, r.RebuildEvents)
			if asJSON {
				return json.NewEncoder(out).Encode(r)
			}
			return nil
		},
	}
	f := cmd.Flags()
	benchURLFlags(f, &urls)
	stringFlag(f, &redisURL, "redis-url", "REDIS_URL", "", "Redis URL (the API's rate limits and idempotency)")
	f.IntVar(&rate, "rate", 1000, "events per second in the lag phase")
	f.IntVar(&patients, "patients", 200, "patients the vital signs are spread over")
	f.IntVar(&requests, "requests", 2000, "GET /v1/patients/{id} requests")
	f.DurationVar(&duration, "duration", 10*time.Second, "length of the lag phase")
	stringFlag(f, &keyFile, "phi-key-file", "PHI_KEY_FILE", "", "PHI master key (seals the seeded history)")
	seed.flags(f)
	f.BoolVar(&asJSON, "json", false, "print a JSON object as the last line")
	return cmd
}

func benchProjections(ctx context.Context, log io.Writer, urls benchURLs, redisURL string, perSecond, patients, requests int, duration time.Duration) (projectionsBench, error) {
	r := projectionsBench{Rate: perSecond}
	b, err := newBenchPipeline(ctx, log, urls, commands.EventSpecs())
	if err != nil {
		return r, err
	}
	defer b.Close()
	tenant := b.tenant.ID

	// applied records when the projector applied each of the tenant's events.
	applied := newAppliedTimes(tenant)
	projector, err := workers.NewProjector(workers.ProjectorDeps{
		JetStream: b.js, DB: b.writerPool, Events: b.writer, Projections: liveProjections(), Logger: b.quiet, Applied: applied.record,
	}, workers.ProjectorConfig{Stream: b.relayCfg.Stream, SubjectPrefix: b.relayCfg.SubjectPrefix, Consumer: "bench-" + b.relayCfg.Name})
	if err != nil {
		return r, err
	}
	// Phase 1: vital signs at perSecond.
	ids, all, stop, err := lagPhase(ctx, b, projector.Run, []*appliedTimes{applied}, patients, perSecond, duration)
	defer stop()
	if err != nil {
		return r, err
	}
	lags := all[0]
	r.Events, r.LagP50Ms, r.LagP99Ms, r.LagMaxMs = len(lags), quantile(lags, 0.5), quantile(lags, 0.99), lags[len(lags)-1]

	// Phase 2: GET /v1/patients/{id} through the real API server.
	if r.ChartP50Ms, r.ChartP99Ms, err = benchChartReads(ctx, b, redisURL, ids, requests); err != nil {
		return r, err
	}
	r.ChartRequests = requests

	// Phase 3: rebuild the tenant's read models from the event store.
	rebar := newProgress(-1, "rebuild")
	stats, err := workers.Rebuild(ctx, workers.CopyDeps{DB: b.writerPool, History: b.writer}, readModels(), tenant, func(n int64) { _ = rebar.Set64(n) })
	_ = rebar.Finish()
	if err != nil {
		return r, err
	}
	r.RebuildEvents, r.RebuildEventsPerSec = stats.Events, rate(stats.Events, stats.Duration)
	return r, nil
}

// benchChartReads serves the API on a loopback port with a fresh dev key
// and times sequential chart reads, returning p50 and p99 in ms.
func benchChartReads(ctx context.Context, b *benchPipeline, redisURL string, ids []uuid.UUID, requests int) (p50, p99 float64, err error) {
	a, err := startBenchAPI(ctx, benchAPIParams{Pool: b.writerPool, Store: b.writer, Tenant: b.tenant.ID, Dir: filepath.Dir(b.keyFile),
		RedisURL: redisURL, Logger: b.quiet})
	if err != nil {
		return 0, 0, err
	}
	defer a.Close()
	lat := make([]float64, 0, requests)
	bar := newProgress(int64(requests), "GET chart")
	for i := 0; i < requests; i++ {
		ms, err := a.get(ctx, "/v1/patients/"+ids[i%len(ids)].String())
		if err != nil {
			return 0, 0, err
		}
		lat = append(lat, ms)
		_ = bar.Add(1)
	}
	_ = bar.Finish()
	slices.Sort(lat)
	return quantile(lat, 0.5), quantile(lat, 0.99), nil
}

func ptrTo[T any](v T) *T { return &v }
