package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/workers"
)

type relayBench struct {
	LightLoadEventsPerSec float64 `json:"light_load_events_per_sec"`
	Samples               int     `json:"samples"`
	P50Ms                 float64 `json:"commit_to_publish_p50_ms"`
	P99Ms                 float64 `json:"commit_to_publish_p99_ms"`
	MaxMs                 float64 `json:"commit_to_publish_max_ms"`
	BacklogEvents         int     `json:"backlog_events"`
	EventsPerSec          float64 `json:"events_per_sec"`
}

func newBenchRelayCmd() *cobra.Command {
	var urls benchURLs
	var rate, backlog int
	var duration time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "relay [--rate N] [--duration D] [--backlog N] [--json]",
		Short: "Commit-to-JetStream-ack latency at light load, and relay throughput",
		Long: `Runs a relay on its own JetStream stream (deleted afterwards), starting at the
event store's head. Phase 1 appends --rate events/s for --duration and measures,
per event, the time from the append's commit to JetStream's acknowledgement.
Phase 2 appends a backlog of --backlog events with the relay stopped, starts it
and measures how fast it publishes them. Uses NATS_URL, or an embedded server.`,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"DATABASE_URL", urls.db}, [2]string{"DATABASE_RELAY_URL", urls.relay}, [2]string{"DATABASE_ADMIN_URL", urls.admin}); err != nil {
				return err
			}
			r, err := benchRelay(cmd.Context(), cmd.ErrOrStderr(), benchRelayParams{urls, rate, duration, backlog})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "commit -> JetStream ack: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d events at %.0f/s)\n", r.P50Ms, r.P99Ms, r.MaxMs, r.Samples, r.LightLoadEventsPerSec)
			fmt.Fprintf(out, "relay throughput:        %.0f events/s (backlog of %d)\n", r.EventsPerSec, r.BacklogEvents)
			if asJSON {
				return json.NewEncoder(out).Encode(r)
			}
			return nil
		},
	}
	benchURLFlags(cmd.Flags(), &urls)
	cmd.Flags().IntVar(&rate, "rate", 200, "events per second in the latency phase")
	cmd.Flags().DurationVar(&duration, "duration", 10*time.Second, "length of the latency phase")
	cmd.Flags().IntVar(&backlog, "backlog", 20000, "events in the throughput phase")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON object as the last line")
	return cmd
}

type benchRelayParams struct {
	urls     benchURLs
	rate     int
	duration time.Duration
	backlog  int
}

func benchRelay(ctx context.Context, log io.Writer, p benchRelayParams) (relayBench, error) {
	var r relayBench
	if p.rate < 1 || p.duration <= 0 || p.backlog < 1 {
		return r, fmt.Errorf("--rate, --duration and --backlog must be positive")
	}
	b, err := newBenchPipeline(ctx, log, p.urls, benchSpecs)
	if err != nil {
		return r, err
	}
	defer b.Close()
	tenant, writer := b.tenant, b.writer

	// acked records JetStream's acknowledgement time of the bench tenant's
	// events; done is closed when want of them were acknowledged.
	var mu sync.Mutex
	acked := make(map[uuid.UUID]time.Time)
	var want int
	done := make(chan struct{})
	published := func(pp workers.PublishedParams) {
		if pp.Event.Tenant != tenant.ID {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		acked[pp.Event.ID] = pp.AckedAt
		if len(acked) == want {
			close(done)
		}
	}
	startRelay := func(ctx context.Context) (stop func(), err error) { return b.startRelay(ctx, published) }
	appendOne := func(ctx context.Context) (uuid.UUID, error) {
		e := chartstream.NewEvent{ID: uuid.Must(uuid.NewV7()), Type: benchEventType, Payload: benchPayload, Metadata: chartstream.Metadata{Actor: "bench"}}
		_, err := writer.Append(ctx, tenant.ID, chartstream.StreamRef{Type: "bench", ID: uuid.New()}, chartstream.NoStream, e)
		return e.ID, err
	}

	// Phase 1: latency at light load.
	n := int(float64(p.rate) * p.duration.Seconds())
	mu.Lock()
	want = n
	mu.Unlock()
	stop, err := startRelay(ctx)
	if err != nil {
		return r, err
	}
	time.Sleep(500 * time.Millisecond) // the relay takes its lease and creates the stream
	committed := make(map[uuid.UUID]time.Time, n)
	bar := newProgress(int64(n), "commit -> ack")
	tick := time.NewTicker(time.Second / time.Duration(p.rate))
	start := time.Now()
	for i := 0; i < n; i++ {
		<-tick.C
		id, err := appendOne(ctx)
		if err != nil {
			tick.Stop()
			stop()
			return r, err
		}
		committed[id] = time.Now()
		_ = bar.Add(1)
	}
	tick.Stop()
	r.LightLoadEventsPerSec = float64(n) / time.Since(start).Seconds()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		stop()
		return r, fmt.Errorf("relay published %d of %d events in 30s", len(acked), n)
	}
	_ = bar.Finish()
	stop()
	lat := make([]float64, 0, n)
	mu.Lock()
	for id, c := range committed {
		lat = append(lat, float64(acked[id].Sub(c).Microseconds())/1000)
	}
	mu.Unlock()
	slices.Sort(lat)
	r.Samples, r.P50Ms, r.P99Ms, r.MaxMs = len(lat), quantile(lat, 0.50), quantile(lat, 0.99), lat[len(lat)-1]

	// Phase 2: throughput on a backlog.
	mu.Lock()
	clear(acked)
	want, done = p.backlog, make(chan struct{})
	mu.Unlock()
	if _, err := runWriters(ctx, 16, 24*time.Hour, countdown(p.backlog, appendOne)); err != nil {
		return r, err
	}
	bar = newProgress(int64(p.backlog), "relay backlog")
	start = time.Now()
	if stop, err = startRelay(ctx); err != nil {
		return r, err
	}
	defer stop()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		return r, fmt.Errorf("relay did not publish the backlog in 5 minutes")
	}
	_ = bar.Finish()
	r.BacklogEvents = p.backlog
	r.EventsPerSec = float64(p.backlog) / time.Since(start).Seconds()
	return r, nil
}

// countdown turns appendOne into a runWriters op that stops after n calls.
func countdown(n int, appendOne func(context.Context) (uuid.UUID, error)) func(context.Context) error {
	var mu sync.Mutex
	return func(ctx context.Context) error {
		mu.Lock()
		if n == 0 {
			mu.Unlock()
			return errWriterDone
		}
		n--
		mu.Unlock()
		_, err := appendOne(ctx)
		return err
	}
}

// quantile of sorted values, nearest rank.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
