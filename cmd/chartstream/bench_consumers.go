package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/chartstream/chartstream/commands"
)

// consumersBench is what `bench consumers` reports: the analytics
// consumers' two lags under one load.
type consumersBench struct {
	Analytics lagBench `json:"analytics_table"`
	Deid      lagBench `json:"deidentified_message"`
}

func newBenchConsumersCmd() *cobra.Command {
	var urls benchURLs
	var rate, patients int
	var duration time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "consumers [--rate N] [--duration D] [--json]",
		Short: "Commit-to-analytics-table and commit-to-de-identified-message lags under one load",
		Long: `Runs a signing relay, the analytics projector and the de-identifier together
(own streams, starting at the event store's head) for a fresh bench tenant, as a
worker process runs them. Registers --patients patients, then records vital
signs at --rate events/s for --duration and measures, per event, commit to its
analytics transaction's commit and commit to JetStream's acknowledgement of its
de-identified message. Targets at 1,000 events/s: p99 <= 1 s and <= 100 ms.`,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"DATABASE_URL", urls.db}, [2]string{"DATABASE_RELAY_URL", urls.relay},
				[2]string{"DATABASE_ADMIN_URL", urls.admin}); err != nil {
				return err
			}
			if rate < 1 || patients < 1 || duration <= 0 {
				return exitError{2, fmt.Errorf("--rate, --patients and --duration must be positive")}
			}
			r, err := runConsumersBench(cmd.Context(), cmd, urls, rate, patients, duration)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, m := range []struct {
				what   string
				lag    lagBench
				target time.Duration
			}{{"analytics table", r.Analytics, time.Second}, {"de-identified message", r.Deid, 100 * time.Millisecond}} {
				fmt.Fprintf(out, "commit -> %s: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d events at %d/s; target p99 <= %d ms)\n",
					m.what, m.lag.LagP50Ms, m.lag.LagP99Ms, m.lag.LagMaxMs, m.lag.Events, m.lag.Rate, m.target.Milliseconds())
			}
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

// runConsumersBench runs both workers behind one relay under the
// vital-signs load.
func runConsumersBench(ctx context.Context, cmd *cobra.Command, urls benchURLs, perSecond, patients int, duration time.Duration) (consumersBench, error) {
	var r consumersBench
	b, err := newBenchPipeline(ctx, cmd.ErrOrStderr(), urls, commands.EventSpecs())
	if err != nil {
		return r, err
	}
	defer b.Close()
	analytics, deidentified := newAppliedTimes(b.tenant.ID), newAppliedTimes(b.tenant.ID)
	runAnalytics, err := analyticsBenchWorker(ctx, b, analytics)
	if err != nil {
		return r, err
	}
	runDeid, err := deidBenchWorker(ctx, b, deidentified) // the relay signs from here on
	if err != nil {
		return r, err
	}
	both := func(ctx context.Context) error {
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return runAnalytics(ctx) })
		g.Go(func() error { return runDeid(ctx) })
		return g.Wait()
	}
	_, lags, stop, err := lagPhase(ctx, b, both, []*appliedTimes{analytics, deidentified}, patients, perSecond, duration)
	defer stop()
	if err != nil {
		return r, err
	}
	for i, into := range []*lagBench{&r.Analytics, &r.Deid} {
		l := lags[i]
		*into = lagBench{Rate: perSecond, Events: len(l), LagP50Ms: quantile(l, 0.5), LagP99Ms: quantile(l, 0.99), LagMaxMs: l[len(l)-1]}
	}
	return r, nil
}
