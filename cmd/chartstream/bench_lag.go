package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream/commands"
)

// The commit-to-X benches (analytics, deid): a relay and the worker
// measured, on a stream of their own, for a fresh bench tenant, under the
// vital-signs load (lagPhase).

// lagBench is what a commit-to-X bench reports.
type lagBench struct {
	Rate     int     `json:"rate"`
	Events   int     `json:"events"`
	LagP50Ms float64 `json:"lag_p50_ms"`
	LagP99Ms float64 `json:"lag_p99_ms"`
	LagMaxMs float64 `json:"lag_max_ms"`
}

// lagWorkerFn makes the worker a lag bench measures, on the bench's
// pipeline, recording into applied when it is done with each event.
type lagWorkerFn func(ctx context.Context, b *benchPipeline, applied *appliedTimes) (run func(context.Context) error, err error)

// lagBenchSpec describes one lag bench.
type lagBenchSpec struct {
	Use, Short, Long string
	// Measured names what the lag is to ("analytics table"), Target its
	// p99 target.
	Measured string
	Target   time.Duration
	Worker   lagWorkerFn
}

func newLagBenchCmd(spec lagBenchSpec) *cobra.Command {
	var urls benchURLs
	var rate, patients int
	var duration time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use: spec.Use, Short: spec.Short, Long: spec.Long,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"DATABASE_URL", urls.db}, [2]string{"DATABASE_RELAY_URL", urls.relay},
				[2]string{"DATABASE_ADMIN_URL", urls.admin}); err != nil {
				return err
			}
			if rate < 1 || patients < 1 || duration <= 0 {
				return exitError{2, fmt.Errorf("--rate, --patients and --duration must be positive")}
			}
			r, err := runLagBench(cmd.Context(), cmd.ErrOrStderr(), urls, spec.Worker, rate, patients, duration)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "commit -> %s: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d events at %d/s; target p99 <= %d ms)\n",
				spec.Measured, r.LagP50Ms, r.LagP99Ms, r.LagMaxMs, r.Events, r.Rate, spec.Target.Milliseconds())
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

// runLagBench runs the vital-signs load through the relay and the worker
// and returns the lags.
func runLagBench(ctx context.Context, log io.Writer, urls benchURLs, worker lagWorkerFn, perSecond, patients int, duration time.Duration) (lagBench, error) {
	r := lagBench{Rate: perSecond}
	b, err := newBenchPipeline(ctx, log, urls, commands.EventSpecs())
	if err != nil {
		return r, err
	}
	defer b.Close()
	applied := newAppliedTimes(b.tenant.ID)
	run, err := worker(ctx, b, applied)
	if err != nil {
		return r, err
	}
	_, all, stop, err := lagPhase(ctx, b, run, []*appliedTimes{applied}, patients, perSecond, duration)
	defer stop()
	if err != nil {
		return r, err
	}
	lags := all[0]
	r.Events, r.LagP50Ms, r.LagP99Ms, r.LagMaxMs = len(lags), quantile(lags, 0.5), quantile(lags, 0.99), lags[len(lags)-1]
	return r, nil
}
