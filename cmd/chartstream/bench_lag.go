package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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

// lagLoad is the vital-signs load of the lag benches and its settings.
type lagLoad struct {
	urls           benchURLs
	rate, patients int
	duration       time.Duration
	asJSON         bool
}

func (l *lagLoad) flags(f *pflag.FlagSet) {
	benchURLFlags(f, &l.urls)
	f.IntVar(&l.rate, "rate", 1000, "events per second")
	f.IntVar(&l.patients, "patients", 200, "patients the vital signs are spread over")
	f.DurationVar(&l.duration, "duration", 10*time.Second, "how long to record")
	f.BoolVar(&l.asJSON, "json", false, "print a JSON object as the last line")
}

func (l *lagLoad) validate() error {
	if err := required([2]string{"DATABASE_URL", l.urls.db}, [2]string{"DATABASE_RELAY_URL", l.urls.relay},
		[2]string{"DATABASE_ADMIN_URL", l.urls.admin}); err != nil {
		return err
	}
	if l.rate < 1 || l.patients < 1 || l.duration <= 0 {
		return exitError{2, fmt.Errorf("--rate, --patients and --duration must be positive")}
	}
	return nil
}

// printLag prints one commit-to-X line.
func printLag(out io.Writer, measured string, r lagBench, target time.Duration) {
	fmt.Fprintf(out, "commit -> %s: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d events at %d/s; target p99 <= %d ms)\n",
		measured, r.LagP50Ms, r.LagP99Ms, r.LagMaxMs, r.Events, r.Rate, target.Milliseconds())
}

// newLagBench turns a lag list into its report.
func newLagBench(rate int, lags []float64) lagBench {
	return lagBench{Rate: rate, Events: len(lags), LagP50Ms: quantile(lags, 0.5), LagP99Ms: quantile(lags, 0.99), LagMaxMs: lags[len(lags)-1]}
}

func newLagBenchCmd(spec lagBenchSpec) *cobra.Command {
	var l lagLoad
	cmd := &cobra.Command{
		Use: spec.Use, Short: spec.Short, Long: spec.Long,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := l.validate(); err != nil {
				return err
			}
			r, err := runLagBench(cmd.Context(), cmd.ErrOrStderr(), l.urls, spec.Worker, l.rate, l.patients, l.duration)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			printLag(out, spec.Measured, r, spec.Target)
			if l.asJSON {
				return json.NewEncoder(out).Encode(r)
			}
			return nil
		},
	}
	l.flags(cmd.Flags())
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
	return newLagBench(perSecond, all[0]), nil
}
