package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"time"

	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/internal/deid"
	"github.com/chartstream/chartstream/internal/signing"
	"github.com/chartstream/chartstream/workers"
)

func newBenchDeidCmd() *cobra.Command {
	return newLagBenchCmd(lagBenchSpec{
		Use:   "deid [--rate N] [--duration D] [--json]",
		Short: "Commit-to-de-identified-message latency at a sustained rate",
		Long: `Runs its own signing relay and de-identifier (own streams, starting at the event
store's head) for a fresh bench tenant. Registers --patients patients, then
records vital signs at --rate events/s for --duration and measures, per event,
the time from the append's commit to JetStream's acknowledgement of its
de-identified message on the de-identified stream. Target: p99 <= 100 ms at
1,000 events/s.`,
		Measured: "de-identified message", Target: 100 * time.Millisecond,
		Worker: deidBenchWorker,
	})
}

// deidBenchWorker is a de-identifier behind a relay that signs, as in
// production, on streams of the bench's own.
func deidBenchWorker(ctx context.Context, b *benchPipeline, applied *appliedTimes) (func(context.Context) error, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer := signing.NewSigner(key)
	b.signer = signer
	rules, err := deid.New(commands.EventSpecs(), deid.Config{})
	if err != nil {
		return nil, err
	}
	cfg := workers.DeidentifierConfig{Name: "deid-" + b.relayCfg.Name, Source: b.relayCfg.Stream, SourcePrefix: b.relayCfg.SubjectPrefix,
		Stream: b.relayCfg.Stream + "_DEID", SubjectPrefix: b.relayCfg.SubjectPrefix + "d", MaxBytes: 1 << 30,
		Tenants: []chartstream.TenantID{b.tenant.ID}}
	d, err := workers.NewDeidentifier(workers.DeidentifierDeps{JetStream: b.js, Sessions: b.writerPool, Events: b.writer, Rules: rules,
		Verifier: signer.Public(), Signer: signer, Logger: b.quiet,
		Published: func(p workers.DeidentifiedParams) { applied.record(p.Source, p.AckedAt) }}, cfg)
	if err != nil {
		return nil, err
	}
	b.closers = append(b.closers, func() { _ = b.js.DeleteStream(context.WithoutCancel(ctx), cfg.Stream) })
	return d.Run, nil
}
