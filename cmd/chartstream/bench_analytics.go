package main

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream/workers"
)

func newBenchAnalyticsCmd() *cobra.Command {
	return newLagBenchCmd(lagBenchSpec{
		Use:   "analytics [--rate N] [--duration D] [--json]",
		Short: "Commit-to-analytics-table lag at a sustained rate",
		Long: `Runs its own relay and analytics projector (own stream, starting at the event
store's head; the watermill router, subscriber and middleware as in production)
for a fresh bench tenant. Registers --patients patients, then records vital
signs at --rate events/s for --duration and measures, per event, commit to its
analytics transaction's commit. Target: p99 <= 1 s at 1,000 events/s.`,
		Measured: "analytics table", Target: time.Second,
		Worker: analyticsBenchWorker,
	})
}

// analyticsBenchWorker is the analytics projector, as in production, on
// the bench's stream.
func analyticsBenchWorker(_ context.Context, b *benchPipeline, applied *appliedTimes) (func(context.Context) error, error) {
	projector, err := workers.NewAnalyticsProjector(workers.AnalyticsDeps{
		Dial: func() (*nats.Conn, error) { return b.nats.Dial("chartstream-bench-analytics") },
		DB:   b.writerPool, Events: b.writer, Logger: b.quiet, Applied: applied.record,
	}, workers.AnalyticsConfig{Stream: b.relayCfg.Stream, SubjectPrefix: b.relayCfg.SubjectPrefix, Consumer: "bench-analytics-" + b.relayCfg.Name})
	if err != nil {
		return nil, err
	}
	return projector.Run, nil
}
