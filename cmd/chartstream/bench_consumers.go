package main

import (
	"context"
	"encoding/json"
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
	var l lagLoad
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
			if err := l.validate(); err != nil {
				return err
			}
			r, err := runConsumersBench(cmd.Context(), cmd, l.urls, l.rate, l.patients, l.duration)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			printLag(out, "analytics table", r.Analytics, time.Second)
			printLag(out, "de-identified message", r.Deid, 100*time.Millisecond)
			if l.asJSON {
				return json.NewEncoder(out).Encode(r)
			}
			return nil
		},
	}
	l.flags(cmd.Flags())
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
	r.Analytics, r.Deid = newLagBench(perSecond, lags[0]), newLagBench(perSecond, lags[1])
	return r, nil
}
