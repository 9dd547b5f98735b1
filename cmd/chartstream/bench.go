package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/tenants"
)

func newBenchCmd() *cobra.Command {
	var cpuProfile string
	var profile *os.File
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the platform on this machine (writes to a dedicated bench tenant)",
		// The profile shows where this process spends its share of the
		// machine; the database's share needs the database's tools.
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			// Cobra runs only the nearest PersistentPreRunE: the root's
			// checks the arguments and applies the environment.
			if err := prepare(cmd, args); err != nil || cpuProfile == "" {
				return err
			}
			var err error
			if profile, err = os.Create(cpuProfile); err != nil {
				return err
			}
			return pprof.StartCPUProfile(profile)
		},
		PersistentPostRunE: func(*cobra.Command, []string) error {
			if profile == nil {
				return nil
			}
			pprof.StopCPUProfile()
			return profile.Close()
		},
	}
	cmd.PersistentFlags().StringVar(&cpuProfile, "cpu-profile", "", "write a Go CPU profile of the bench to this file (go tool pprof)")
	cmd.AddCommand(newBenchEventstoreCmd(), newBenchRelayCmd(), newBenchProjectionsCmd(), newBenchAnalyticsCmd(), newBenchCommandsCmd(), newBenchSeedCmd(),
		newBenchAuditCmd(), newBenchDeidCmd(), newBenchConsumersCmd())
	return cmd
}

// benchEventType is the bench's own event type: no PHI, so the figures are
// the event store's, not the key service's.
const benchEventType = "bench.recorded"

// benchSpecs registers the bench's event type.
var benchSpecs = []chartstream.EventSpec{{Type: benchEventType, SchemaVersion: 1}}

// benchPayload is the size and shape of a typical observation event.
var benchPayload = json.RawMessage(`{"observation_id":"6f1c2f9e-8a51-4a0e-9a7e-0d3c1f7b9a11","code":"8867-4","system":"http://loinc.org","value":72,"unit":"/min","effective_at":"2026-11-26T10:00:00Z","encounter_id":"0b6c8f3a-2d4e-4f5a-8b9c-1d2e3f4a5b6c"}`)

type eventstoreBench struct {
	Writers             int     `json:"writers"`
	DurationSeconds     float64 `json:"duration_s"`
	Events              int64   `json:"events"`
	EventsPerSec        float64 `json:"events_per_sec"`
	RawInsertsPerSec    float64 `json:"raw_inserts_per_sec"`
	Ratio               float64 `json:"ratio"`
	ReadAllEvents       int64   `json:"readall_events"`
	ReadAllEventsPerSec float64 `json:"readall_events_per_sec"`
	// ReadAllFirstEventsPerSec is the first read, right after the writes.
	ReadAllFirstEventsPerSec float64 `json:"readall_first_read_events_per_sec"`
}

func newBenchEventstoreCmd() *cobra.Command {
	var dbURL, adminURL string
	var writers int
	var duration time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "eventstore [--writers N] [--duration D] [--json]",
		Short: "Append throughput against raw INSERTs of the same row size, and ReadAll throughput",
		Long: `Runs, on the same database in the same run: single-row INSERTs into a plain table
(the floor any event store pays), then single-event appends to distinct streams
through the store as the API makes them (concurrent appends share transactions,
see APPEND_CONCURRENCY), alternating in one-second slices for --duration each
with --writers concurrent writers; then reads every appended event back with
ReadAll. With --json the last line is one JSON object.`,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"DATABASE_URL", dbURL}, [2]string{"DATABASE_ADMIN_URL", adminURL}); err != nil {
				return err
			}
			if writers < 1 || duration <= 0 {
				return fmt.Errorf("--writers and --duration must be positive")
			}
			r, err := benchEventstore(cmd.Context(), cmd.ErrOrStderr(), dbURL, adminURL, writers, duration)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "appends:    %10.0f events/s  (%d writers, %s, single-event appends to distinct streams)\n", r.EventsPerSec, writers, duration)
			fmt.Fprintf(out, "raw INSERT: %10.0f rows/s    (same row size, plain table, same database)\n", r.RawInsertsPerSec)
			fmt.Fprintf(out, "ratio:      %10.2f           (target >= 0.70)\n", r.Ratio)
			fmt.Fprintf(out, "ReadAll:    %10.0f events/s  (%d events, PHI sealed, pages of 1000; first read right after the writes: %.0f/s)\n", r.ReadAllEventsPerSec, r.ReadAllEvents, r.ReadAllFirstEventsPerSec)
			if asJSON {
				return json.NewEncoder(out).Encode(r)
			}
			return nil
		},
	}
	stringFlag(cmd.Flags(), &dbURL, "database-url", "DATABASE_URL", "", "PostgreSQL URL of the app role")
	stringFlag(cmd.Flags(), &adminURL, "database-admin-url", "DATABASE_ADMIN_URL", "", "owner URL (creates the bench tenant and raw table)")
	cmd.Flags().IntVar(&writers, "writers", 32, "concurrent writers")
	cmd.Flags().DurationVar(&duration, "duration", 10*time.Second, "duration of each write phase")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON object as the last line")
	return cmd
}

func benchEventstore(ctx context.Context, log io.Writer, dbURL, adminURL string, writers int, duration time.Duration) (eventstoreBench, error) {
	r := eventstoreBench{Writers: writers, DurationSeconds: duration.Seconds()}
	admin, err := postgres.Connect(ctx, postgres.Config{URL: adminURL, MaxConns: 2, ApplicationName: "chartstream-bench"})
	if err != nil {
		return r, err
	}
	defer admin.Close()
	tenant, err := tenants.NewAdmin(admin).Create(ctx, tenants.NewTenant{Slug: "bench-" + uuid.NewString()[:8], Name: "Benchmark", Tier: chartstream.TierEnterprise})
	if err != nil {
		return r, err
	}
	fmt.Fprintf(log, "bench tenant %s (%s)\n", tenant.Slug, tenant.ID)
	// A plain table with the events row's columns: no RLS, no trigger, no
	// secondary index. The floor an event store cannot go below. (Its
	// tenant column is not called tenant_id: it holds no tenant data, and
	// every tenant_id table must have RLS.)
	if _, err := admin.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_raw_inserts (
			id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant uuid NOT NULL, stream_type text NOT NULL,
			stream_id uuid NOT NULL, version bigint NOT NULL, event_id uuid NOT NULL, event_type text NOT NULL,
			schema_version int NOT NULL, payload jsonb NOT NULL, metadata jsonb NOT NULL,
			recorded_at timestamptz NOT NULL DEFAULT now(), hash bytea NOT NULL);
		GRANT INSERT ON bench_raw_inserts TO chartstream_app`); err != nil {
		return r, fmt.Errorf("create raw table: %w", err)
	}

	pool, err := postgres.Connect(ctx, postgres.Config{URL: dbURL, MaxConns: int32(writers + 4), ApplicationName: "chartstream-bench"})
	if err != nil {
		return r, err
	}
	defer pool.Close()
	reg, err := eventstore.NewRegistry(benchSpecs)
	if err != nil {
		return r, err
	}
	// The bench event type has no PHI; the store still wants a key provider.
	keyFile := filepath.Join(os.TempDir(), "chartstream-bench-"+uuid.NewString()+".key")
	defer os.Remove(keyFile)
	if _, err := phi.CreateLocalKeyFile(keyFile); err != nil {
		return r, err
	}
	keys, err := phi.OpenLocalKeyFile(keyFile)
	if err != nil {
		return r, err
	}
	store, err := eventstore.New(pool, reg, keys, eventstore.Config{})
	if err != nil {
		return r, err
	}
	meta := chartstream.Metadata{Actor: "bench", Roles: []string{"clinician"}, CorrelationID: uuid.NewString(), RequestID: "bench"}
	metaJSON, _ := json.Marshal(meta)
	hash := make([]byte, 32)

	rawInsert := func(ctx context.Context) error {
		_, err := pool.Exec(ctx, `INSERT INTO bench_raw_inserts (tenant, stream_type, stream_id, version, event_id, event_type, schema_version, payload, metadata, hash)
			VALUES ($1, 'bench', $2, 1, $3, $4, 1, $5, $6, $7)`, tenant.ID, uuid.New(), uuid.New(), benchEventType, benchPayload, metaJSON, hash)
		return err
	}
	appendOne := func(ctx context.Context) error {
		_, err := store.Append(ctx, tenant.ID, chartstream.StreamRef{Type: "bench", ID: uuid.New()}, chartstream.NoStream,
			chartstream.NewEvent{Type: benchEventType, Payload: benchPayload, Metadata: meta})
		return err
	}
	// The two phases alternate in one-second slices, so a change in the
	// machine's background load affects both alike.
	var raw, appended int64
	bar := newProgress(int64(2*duration/time.Second), "raw INSERT / append slices")
	for elapsed := time.Duration(0); elapsed < duration; elapsed += time.Second {
		slice := min(time.Second, duration-elapsed)
		n, err := runWriters(ctx, writers, slice, rawInsert)
		if err != nil {
			return r, err
		}
		raw += n
		_ = bar.Add(1)
		if n, err = runWriters(ctx, writers, slice, appendOne); err != nil {
			return r, err
		}
		appended += n
		_ = bar.Add(1)
	}
	_ = bar.Finish()
	r.Events = appended
	r.RawInsertsPerSec = float64(raw) / duration.Seconds()
	r.EventsPerSec = float64(appended) / duration.Seconds()
	if r.RawInsertsPerSec > 0 {
		r.Ratio = r.EventsPerSec / r.RawInsertsPerSec
	}

	// The first read after the writes also sets the rows' hint bits (it
	// checks each writer's commit status and dirties the pages); later
	// reads, like a projection rebuild's, find them set. Both are reported.
	for pass := 0; pass < 2; pass++ {
		n, rate, err := benchReadAll(ctx, store, tenant.ID, appended)
		if err != nil {
			return r, err
		}
		if pass == 0 {
			r.ReadAllFirstEventsPerSec = rate
		} else {
			r.ReadAllEvents, r.ReadAllEventsPerSec = n, rate
		}
	}
	return r, nil
}

// benchReadAll reads the tenant's events in pages of 1000 and returns how
// many there were and how many per second.
func benchReadAll(ctx context.Context, store *eventstore.Store, tenant chartstream.TenantID, expected int64) (int64, float64, error) {
	bar := newProgress(expected, "ReadAll")
	defer func() { _ = bar.Finish() }()
	start := time.Now()
	var cursor eventstore.Cursor
	var n int64
	for {
		events, next, err := store.ReadAll(ctx, eventstore.Filter{Tenant: tenant}, cursor, 1000)
		if err != nil {
			return n, 0, err
		}
		if len(events) == 0 {
			return n, float64(n) / time.Since(start).Seconds(), nil
		}
		n += int64(len(events))
		_ = bar.Add(len(events))
		cursor = next
	}
}

// errWriterDone, returned by a runWriters op, ends that writer cleanly.
var errWriterDone = errors.New("writer done")

// runWriters runs op in a loop on n goroutines for d and returns how many
// calls succeeded. The first error stops every writer.
func runWriters(ctx context.Context, n int, d time.Duration, op func(context.Context) error) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var count atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := op(ctx); err != nil {
					if errors.Is(err, errWriterDone) {
						return
					}
					if ctx.Err() == nil {
						once.Do(func() { firstErr = err; cancel() })
					}
					return
				}
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	return count.Load(), firstErr
}
