package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/internal/deid"
	"github.com/chartstream/chartstream/internal/signing"
	"github.com/chartstream/chartstream/workers"
)

type deidBench struct {
	Rate     int     `json:"rate"`
	Events   int     `json:"events"`
	LagP50Ms float64 `json:"commit_to_deid_p50_ms"`
	LagP99Ms float64 `json:"commit_to_deid_p99_ms"`
	LagMaxMs float64 `json:"commit_to_deid_max_ms"`
}

func newBenchDeidCmd() *cobra.Command {
	var urls benchURLs
	var rate, patients int
	var duration time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "deid [--rate N] [--duration D] [--json]",
		Short: "Commit-to-de-identified-message latency at a sustained rate",
		Long: `Runs its own signing relay and de-identifier (own streams, starting at the event
store's head) for a fresh bench tenant. Registers --patients patients, then
records vital signs at --rate events/s for --duration and measures, per event,
the time from the append's commit to JetStream's acknowledgement of its
de-identified message on the de-identified stream.`,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"DATABASE_URL", urls.db}, [2]string{"DATABASE_RELAY_URL", urls.relay}, [2]string{"DATABASE_ADMIN_URL", urls.admin}); err != nil {
				return err
			}
			if rate < 1 || patients < 1 || duration <= 0 {
				return exitError{2, fmt.Errorf("--rate, --patients and --duration must be positive")}
			}
			r, err := benchDeid(cmd.Context(), cmd.ErrOrStderr(), urls, rate, patients, duration)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "commit -> de-identified message: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d events at %d/s)\n", r.LagP50Ms, r.LagP99Ms, r.LagMaxMs, r.Events, r.Rate)
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
	f.DurationVar(&duration, "duration", 10*time.Second, "length of the load")
	f.BoolVar(&asJSON, "json", false, "print a JSON object as the last line")
	return cmd
}

func benchDeid(ctx context.Context, log io.Writer, urls benchURLs, perSecond, patients int, duration time.Duration) (deidBench, error) {
	r := deidBench{Rate: perSecond}
	b, err := newBenchPipeline(ctx, log, urls, commands.EventSpecs())
	if err != nil {
		return r, err
	}
	defer b.Close()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return r, err
	}
	signer := signing.NewSigner(key)
	b.signer = signer
	rules, err := deid.New(commands.EventSpecs(), deid.Config{})
	if err != nil {
		return r, err
	}
	stored := newAppliedTimes(b.tenant.ID)
	cfg := workers.DeidentifierConfig{Name: "deid-" + b.relayCfg.Name, Source: b.relayCfg.Stream, SourcePrefix: b.relayCfg.SubjectPrefix,
		Stream: b.relayCfg.Stream + "_DEID", SubjectPrefix: b.relayCfg.SubjectPrefix + "d", MaxBytes: 1 << 30,
		Tenants: []chartstream.TenantID{b.tenant.ID}}
	d, err := workers.NewDeidentifier(workers.DeidentifierDeps{JetStream: b.js, Sessions: b.writerPool, Events: b.writer, Rules: rules,
		Verifier: signer.Public(), Signer: signer, Logger: b.quiet,
		Published: func(p workers.DeidentifiedParams) { stored.record(p.Source, p.AckedAt) }}, cfg)
	if err != nil {
		return r, err
	}
	b.closers = append(b.closers, func() { _ = b.js.DeleteStream(context.WithoutCancel(ctx), cfg.Stream) })
	_, lags, stop, err := lagPhase(ctx, b, d.Run, stored, patients, perSecond, duration)
	defer stop()
	if err != nil {
		return r, err
	}
	r.Events, r.LagP50Ms, r.LagP99Ms, r.LagMaxMs = len(lags), quantile(lags, 0.5), quantile(lags, 0.99), lags[len(lags)-1]
	return r, nil
}
