package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/accesslog"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/tenants"
	"github.com/chartstream/chartstream/workers"
)

// auditBench is what bench audit measures.
type auditBench struct {
	Tenant           chartstream.TenantID `json:"tenant_id"`
	Events           int64                `json:"events"`
	Patients         int                  `json:"patients,omitempty"` // seeded by this run
	SeedSeconds      float64              `json:"seed_s"`
	SeedEventsPerSec float64              `json:"seed_events_per_sec"`
	// The export: chartstream export of the whole tenant to a file, in a
	// process of its own, whose peak resident memory is its own.
	ExportSeconds      float64 `json:"export_s"`
	ExportEventsPerSec float64 `json:"export_events_per_sec"`
	ExportBytes        int64   `json:"export_bytes"`
	ExportMaxRSSMB     float64 `json:"export_max_rss_mb"`
	// GET /v1/patients/{id}, alternately on a server writing the access
	// log and on one that does not.
	ChartReads         int     `json:"chart_reads"`
	ChartP50Ms         float64 `json:"chart_p50_ms"`
	ChartP99Ms         float64 `json:"chart_p99_ms"`
	ChartNoLogP50Ms    float64 `json:"chart_without_log_p50_ms"`
	ChartNoLogP99Ms    float64 `json:"chart_without_log_p99_ms"`
	AccessLogP99CostMs float64 `json:"access_log_p99_cost_ms"`
}

func newBenchAuditCmd() *cobra.Command {
	var dbURL, adminURL, redisURL, reuse string
	var keys phiKeys
	var events, patients, reads int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "audit [--events N] [--patients P] [--reads R] [--tenant T] [--json]",
		Short: "Export throughput and memory for a large tenant; the access log's cost on a chart read",
		Long: `Seeds a fresh bench tenant with --events events over --patients patients through
the event store's append path (1,000-event appends, 4 at a time; a registration,
an allergy with its reaction, PHI, every tenth event, observations otherwise),
then runs chartstream export of the whole tenant to a file in a child process
and reports its events/s and its peak resident memory (targets: 100,000 events/s,
under 100 MB for 1,000,000 events). Then it serves the API twice on loopback
ports, one writing the PHI access log and one not, and sends --reads GET
/v1/patients/{id} to each, alternately, reporting p50 and p99 of both and the
access log's cost on p99 (target: at most 1 ms). --tenant exports a tenant an
earlier run seeded instead of seeding one (the seed takes minutes). With --json
the last line is one JSON object.`,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"DATABASE_URL", dbURL}, [2]string{"DATABASE_ADMIN_URL", adminURL},
				[2]string{"REDIS_URL", redisURL}); err != nil {
				return exitError{2, err}
			}
			if events < 1 || patients < 1 || reads < 1 || events < 2*patients {
				return exitError{2, errors.New("--events, --patients and --reads must be positive, with at least 2 events per patient")}
			}
			p := benchAuditParams{dbURL: dbURL, adminURL: adminURL, redisURL: redisURL, keys: keys, events: events, patients: patients, reads: reads}
			if reuse != "" {
				var err error
				if p.reuse, err = chartstream.ParseTenantID(reuse); err != nil {
					return exitError{2, errors.New("--tenant must be a tenant id (UUID)")}
				}
			}
			r, err := benchAudit(cmd.Context(), cmd.ErrOrStderr(), p)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if r.SeedSeconds > 0 {
				fmt.Fprintf(out, "seed:   %d events over %d patients in %.1f s (%.0f events/s)\n", r.Events, r.Patients, r.SeedSeconds, r.SeedEventsPerSec)
			} else {
				fmt.Fprintf(out, "tenant: %s, %d events seeded earlier\n", r.Tenant, r.Events)
			}
			fmt.Fprintf(out, "export: %.0f events/s (%.1f s, %.0f MB), peak RSS %.1f MB  (targets >= 100,000/s, < 100 MB)\n",
				r.ExportEventsPerSec, r.ExportSeconds, float64(r.ExportBytes)/1e6, r.ExportMaxRSSMB)
			fmt.Fprintf(out, "GET /v1/patients/{id}: p50 %.2f / p99 %.2f ms with the access log, %.2f / %.2f ms without: p99 cost %.2f ms (target <= 1)\n",
				r.ChartP50Ms, r.ChartP99Ms, r.ChartNoLogP50Ms, r.ChartNoLogP99Ms, r.AccessLogP99CostMs)
			if asJSON {
				return json.NewEncoder(out).Encode(r)
			}
			return nil
		},
	}
	f := cmd.Flags()
	stringFlag(f, &dbURL, "database-url", "DATABASE_URL", "", "PostgreSQL URL of the app role")
	stringFlag(f, &adminURL, "database-admin-url", "DATABASE_ADMIN_URL", "", "owner URL (creates the bench tenants)")
	stringFlag(f, &redisURL, "redis-url", "REDIS_URL", "", "Redis URL (the API's rate limits)")
	phiKeyFlags(f, &keys)
	f.IntVar(&events, "events", 1_000_000, "events of the exported tenant")
	f.IntVar(&patients, "patients", 1000, "patients they are spread over")
	f.IntVar(&reads, "reads", 3000, "chart reads on each server")
	f.StringVar(&reuse, "tenant", "", "export this tenant (seeded by an earlier run) instead of seeding one")
	f.BoolVar(&asJSON, "json", false, "print a JSON object as the last line")
	return cmd
}

type benchAuditParams struct {
	dbURL, adminURL, redisURL string
	keys                      phiKeys
	events, patients, reads   int
	// reuse is a tenant to export instead of seeding one.
	reuse chartstream.TenantID
}

func benchAudit(ctx context.Context, log io.Writer, p benchAuditParams) (auditBench, error) {
	var r auditBench
	admin, err := postgres.Connect(ctx, postgres.Config{URL: p.adminURL, MaxConns: 2, ApplicationName: "chartstream-bench"})
	if err != nil {
		return r, err
	}
	newTenant := func() (chartstream.TenantID, error) {
		t, err := tenants.NewAdmin(admin).Create(ctx, tenants.NewTenant{Slug: "bench-" + uuid.NewString()[:8], Name: "Benchmark", Tier: chartstream.TierEnterprise})
		return t.ID, err
	}
	exported := p.reuse
	if exported.IsZero() {
		exported, err = newTenant()
	}
	var readTenant chartstream.TenantID
	if err == nil {
		readTenant, err = newTenant()
	}
	admin.Close()
	if err != nil {
		return r, err
	}
	r.Tenant = exported
	fmt.Fprintf(log, "bench tenant %s\n", exported)
	store, pool, err := openStore(ctx, p.dbURL, p.keys, "chartstream-bench", commands.EventSpecs())
	if err != nil {
		return r, err
	}
	defer pool.Close()
	if p.reuse.IsZero() {
		start := time.Now()
		if r.Events, err = seedAuditTenant(ctx, store, exported, p.events, p.patients); err != nil {
			return r, err
		}
		r.SeedSeconds = time.Since(start).Seconds()
		r.SeedEventsPerSec = float64(r.Events) / r.SeedSeconds
		r.Patients = p.patients
	} else if r.Events, err = store.CountRecords(ctx, exported, eventstore.RecordFilter{}); err != nil {
		return r, err
	}
	dir, err := os.MkdirTemp("", "chartstream-bench-audit-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	if err := benchExport(ctx, log, exported, filepath.Join(dir, "export.ndjson"), &r); err != nil {
		return r, err
	}
	return r, benchAccessLogCost(ctx, log, store, pool, readTenant, dir, p, &r)
}

// seedAuditTenant appends events to patients' streams, 1,000 per append,
// four appends at a time, and returns how many it appended.
func seedAuditTenant(ctx context.Context, store *eventstore.Store, tenant chartstream.TenantID, events, patients int) (int64, error) {
	bar := newProgress(int64(events), "seeding")
	defer func() { _ = bar.Finish() }()
	md := chartstream.Metadata{Actor: "bench-audit", Roles: []string{string(chartstream.RoleClinician)}, CorrelationID: uuid.NewString()}
	var next, appended atomic.Int64
	per := events / patients
	_, err := runWriters(ctx, 4, time.Hour, func(ctx context.Context) error {
		i := int(next.Add(1)) - 1
		if i >= patients {
			return errWriterDone
		}
		n := per
		if i == patients-1 {
			n = events - per*(patients-1)
		}
		stream := patient.Stream(uuid.New())
		for v := 0; v < n; v += seedBatch {
			batch := make([]chartstream.NewEvent, 0, min(seedBatch, n-v))
			for k := v; k < v+cap(batch); k++ {
				batch = append(batch, auditSeedEvent(k, md))
			}
			if _, err := store.Append(ctx, tenant, stream, int64(v), batch...); err != nil {
				return fmt.Errorf("seed: %w", err)
			}
			appended.Add(int64(len(batch)))
			_ = bar.Add(len(batch))
		}
		return nil
	})
	return appended.Load(), err
}

// auditSeedEvent is a patient stream's k-th event (from 0): the
// registration, an allergy with its reaction (PHI) every tenth, an
// observation otherwise.
func auditSeedEvent(k int, md chartstream.Metadata) chartstream.NewEvent {
	var typ string
	var payload any
	switch {
	case k == 0:
		typ, payload = patient.TypeRegistered, patient.PatientRegistered{MRN: "BENCH-" + uuid.NewString()[:12],
			Name: patient.HumanName{Family: "Lovelace", Given: []string{"Ada"}}, BirthDate: "1990-01-02", Sex: patient.SexFemale}
	case k%10 == 0:
		typ, payload = patient.TypeAllergyRecorded, patient.AllergyRecorded{AllergyID: uuid.New(),
			Substance: patient.Coding{Code: "7980", Display: "Penicillin G", System: patient.RxNorm}, Criticality: patient.CriticalityHigh,
			Reaction: "hives and shortness of breath within minutes"}
	default:
		value := 50 + float64(k%60)
		typ, payload = patient.TypeObservationRecorded, patient.ObservationRecorded{ObservationID: uuid.New(), Code: "8867-4",
			System: patient.LOINC, Value: &value, Unit: "/min", EffectiveAt: time.Unix(1_700_000_000+int64(k), 0).UTC()}
	}
	raw, _ := json.Marshal(payload) // plain structs always marshal
	return chartstream.NewEvent{Type: typ, Payload: raw, Metadata: md}
}

// benchExport runs chartstream export of the tenant to file in a child
// process and takes its duration and peak resident memory.
func benchExport(ctx context.Context, log io.Writer, tenant chartstream.TenantID, file string, r *auditBench) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "exporting %d events with %s export\n", r.Events, filepath.Base(self))
	cmd := exec.CommandContext(ctx, self, "export", "--tenant", tenant.String(), "--out", file)
	cmd.Stdout, cmd.Stderr = log, log
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	r.ExportSeconds = time.Since(start).Seconds()
	r.ExportEventsPerSec = float64(r.Events) / r.ExportSeconds
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.ExportMaxRSSMB = float64(ru.Maxrss) / 1024 // kilobytes on Linux
	}
	info, err := os.Stat(file)
	if err != nil {
		return err
	}
	r.ExportBytes = info.Size()
	return nil
}

// noAccessLog is the bench's control: a server that logs no PHI access.
type noAccessLog struct{}

func (noAccessLog) Healthy() error         { return nil }
func (noAccessLog) Record(accesslog.Entry) {}

// benchAccessLogCost registers and projects a few patients of their own
// tenant, then reads their charts alternately from a server writing the
// access log and from one that does not.
func benchAccessLogCost(ctx context.Context, log io.Writer, store *eventstore.Store, pool *pgxpool.Pool, tenant chartstream.TenantID, dir string, p benchAuditParams, r *auditBench) error {
	const patients = 20
	ids := make([]uuid.UUID, patients)
	md := chartstream.Metadata{Actor: "bench-audit"}
	var all []chartstream.Event
	for i := range ids {
		ids[i] = uuid.New()
		batch := []chartstream.NewEvent{auditSeedEvent(0, md), auditSeedEvent(1, md), auditSeedEvent(10, md)}
		if _, err := store.Append(ctx, tenant, patient.Stream(ids[i]), chartstream.NoStream, batch...); err != nil {
			return err
		}
	}
	for _, id := range ids {
		if err := store.PatientEvents(ctx, tenant, patient.Stream(id), eventstore.RecordFilter{}, func(e chartstream.Event) error {
			all = append(all, e)
			return nil
		}); err != nil {
			return err
		}
	}
	if err := postgres.InTenantTx(ctx, pool, tenant, func(tx pgx.Tx) error {
		return workers.ApplyEvents(ctx, tx, liveProjections(), all)
	}); err != nil {
		return fmt.Errorf("project the read tenant: %w", err)
	}
	quiet := logging.New(log, slog.LevelWarn)
	logged, err := startBenchAPI(ctx, benchAPIParams{Pool: pool, Store: store, Tenant: tenant, Dir: dir, RedisURL: p.redisURL, Logger: quiet})
	if err != nil {
		return err
	}
	defer logged.Close()
	control, err := startBenchAPI(ctx, benchAPIParams{Pool: pool, Store: store, Tenant: tenant, Dir: dir, RedisURL: p.redisURL, Logger: quiet, Access: noAccessLog{}})
	if err != nil {
		return err
	}
	defer control.Close()
	with, without := make([]float64, 0, p.reads), make([]float64, 0, p.reads)
	bar := newProgress(int64(2*p.reads), "GET chart, with and without the access log")
	for i := 0; i < p.reads; i++ {
		path := "/v1/patients/" + ids[i%patients].String()
		a, err := logged.get(ctx, path)
		if err != nil {
			return err
		}
		b, err := control.get(ctx, path)
		if err != nil {
			return err
		}
		with, without = append(with, a), append(without, b)
		_ = bar.Add(2)
	}
	_ = bar.Finish()
	slices.Sort(with)
	slices.Sort(without)
	r.ChartReads = p.reads
	r.ChartP50Ms, r.ChartP99Ms = quantile(with, 0.5), quantile(with, 0.99)
	r.ChartNoLogP50Ms, r.ChartNoLogP99Ms = quantile(without, 0.5), quantile(without, 0.99)
	r.AccessLogP99CostMs = r.ChartP99Ms - r.ChartNoLogP99Ms
	return nil
}
