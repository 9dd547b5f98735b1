package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/workers"
)

type analyticsBench struct {
	Rate     int     `json:"rate"`
	Events   int     `json:"events"`
	LagP50Ms float64 `json:"lag_p50_ms"`
	LagP99Ms float64 `json:"lag_p99_ms"`
	LagMaxMs float64 `json:"lag_max_ms"`
}

func newBenchAnalyticsCmd() *cobra.Command {
	var urls benchURLs
	var rate, patients int
	var duration time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "analytics [--rate N] [--duration D] [--json]",
		Short: "Commit-to-analytics-table lag at a sustained rate",
		Long: `Runs its own relay and analytics projector (own stream, starting at the event
store's head; the watermill router, subscriber and middleware as in production)
for a fresh bench tenant. Registers --patients patients, then records vital
signs at --rate events/s for --duration and measures, per event, commit to its
analytics transaction's commit. Target: p99 <= 1 s at 1,000 events/s.`,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"DATABASE_URL", urls.db}, [2]string{"DATABASE_RELAY_URL", urls.relay},
				[2]string{"DATABASE_ADMIN_URL", urls.admin}); err != nil {
				return err
			}
			if rate < 1 || patients < 1 || duration <= 0 {
				return fmt.Errorf("--rate, --patients and --duration must be positive")
			}
			r, err := benchAnalytics(cmd.Context(), cmd.ErrOrStderr(), urls, rate, patients, duration)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "commit -> analytics table: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d events at %d/s; target p99 <= 1000 ms)\n",
				r.LagP50Ms, r.LagP99Ms, r.LagMaxMs, r.Events, r.Rate)
			if asJSON {
				return json.NewEncoder(out).Encode(r)
			}
			return nil
		},
	}
	f := cmd.Flags()
	benchURLFlags(f, &urls)
	f.IntVar(&rate, "rate", 1000, "events per second")
	f.IntVar(&patients, "patients", 200, "patients the vital signs are spread over")
	f.DurationVar(&duration, "duration", 10*time.Second, "how long to record")
	f.BoolVar(&asJSON, "json", false, "print a JSON object as the last line")
	return cmd
}

func benchAnalytics(ctx context.Context, log io.Writer, urls benchURLs, perSecond, patients int, duration time.Duration) (analyticsBench, error) {
	r := analyticsBench{Rate: perSecond}
	b, err := newBenchPipeline(ctx, log, urls, commands.EventSpecs())
	if err != nil {
		return r, err
	}
	defer b.Close()
	applied := newAppliedTimes(b.tenant.ID)
	projector, err := workers.NewAnalyticsProjector(workers.AnalyticsDeps{
		Dial: func() (*nats.Conn, error) { return b.nats.Dial("chartstream-bench-analytics") },
		DB:   b.writerPool, Events: b.writer, Logger: b.quiet, Applied: applied.record,
	}, workers.AnalyticsConfig{Stream: b.relayCfg.Stream, SubjectPrefix: b.relayCfg.SubjectPrefix, Consumer: "bench-analytics-" + b.relayCfg.Name})
	if err != nil {
		return r, err
	}
	_, lags, stop, err := lagPhase(ctx, b, projector.Run, applied, patients, perSecond, duration)
	defer stop()
	if err != nil {
		return r, err
	}
	r.Events, r.LagP50Ms, r.LagP99Ms, r.LagMaxMs = len(lags), quantile(lags, 0.5), quantile(lags, 0.99), lags[len(lags)-1]
	return r, nil
}
