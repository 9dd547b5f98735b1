package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/encounter"
	"github.com/chartstream/chartstream/commands/medicationorder"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/tenants"
	"github.com/chartstream/chartstream/workers"
)

// History seeding: benches measure on a database that already holds other
// tenants' history, as production's will, not on a fresh one.
const (
	// seedSlugPrefix names the tenants that hold seeded history.
	seedSlugPrefix = "history-"
	// seedPatients is each seeded tenant's patients per seeding run.
	seedPatients = 10
	// seedWorkers seed tenants concurrently.
	seedWorkers = 4
)

// seedSpec is how much history the database must hold.
type seedSpec struct {
	// Events is the least number of events the event store must hold, of
	// any tenant; 0 seeds nothing.
	Events int64
	// Tenants is the number of seed tenants the missing events are spread
	// over.
	Tenants int
}

func (s *seedSpec) flags(f *pflag.FlagSet) {
	f.Int64Var(&s.Events, "seed-events", 0, "first fill the event store to hold at least this many events of other tenants' history")
	f.IntVar(&s.Tenants, "seed-tenants", 300, "tenants the seeded history is spread over")
}

func (s seedSpec) validate() error {
	switch {
	case s.Events < 0 || s.Events > 100_000_000:
		return errors.New("--seed-events must be 0 to 100,000,000")
	case s.Tenants < 1 || s.Tenants > 1000:
		return errors.New("--seed-tenants must be 1 to 1,000")
	}
	return nil
}

// seedReport says what seeding found and did.
type seedReport struct {
	EventsBefore int64   `json:"events_before"`
	EventsAdded  int64   `json:"events_added"`
	Tenants      int     `json:"tenants"`
	SeedSeconds  float64 `json:"seed_s"`
	// RebuiltEvents is what rebuilding the seeded tenants' read models
	// replayed, and RebuildEventsPerSec its rate: the seeded history is
	// projected like any other, so reads and rebuilds meet full tables.
	RebuiltEvents       int64   `json:"rebuilt_events"`
	RebuildEventsPerSec float64 `json:"rebuild_events_per_sec"`
}

func (r seedReport) print(w io.Writer) {
	if r.EventsAdded == 0 {
		fmt.Fprintf(w, "history: the event store holds %d events already; nothing seeded\n", r.EventsBefore)
		return
	}
	fmt.Fprintf(w, "history: %d events added to %d in %.1f s over %d tenants; their read models rebuilt at %.0f events/s (%d events)\n",
		r.EventsAdded, r.EventsBefore, r.SeedSeconds, r.Tenants, r.RebuildEventsPerSec, r.RebuiltEvents)
}

// seedHistory makes the event store hold at least spec.Events events. It
// counts what is there (as the relay role, which sees every tenant), and
// spreads what is missing over spec.Tenants tenants named history-NNN
// (created if absent): per tenant and run, ten patients registered through
// the commands, each with an encounter, a medication order and
// observations appended straight to the store in appends of 1,000. Then it
// rebuilds those tenants' read models. Running it again adds nothing.
func seedHistory(ctx context.Context, log io.Writer, urls benchURLs, keyFile string, spec seedSpec) (seedReport, error) {
	var r seedReport
	if spec.Events <= 0 {
		return r, nil
	}
	relay, err := postgres.Connect(ctx, postgres.Config{URL: urls.relay, MaxConns: 2, ApplicationName: "chartstream-seed"})
	if err != nil {
		return r, err
	}
	defer relay.Close()
	if err := relay.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&r.EventsBefore); err != nil {
		return r, fmt.Errorf("count events: %w", err)
	}
	missing := spec.Events - r.EventsBefore
	if missing <= 0 {
		return r, nil
	}
	ids, err := seedTenants(ctx, urls.admin, spec.Tenants)
	if err != nil {
		return r, err
	}
	r.Tenants = len(ids)
	pool, err := postgres.Connect(ctx, postgres.Config{URL: urls.db, MaxConns: 2 * seedWorkers, ApplicationName: "chartstream-seed"})
	if err != nil {
		return r, err
	}
	defer pool.Close()
	store, err := newStore(pool, keyFile, commands.EventSpecs(), eventstore.Config{})
	if err != nil {
		return r, err
	}

	start := time.Now()
	bar := newProgress(missing, "seeding history")
	var added atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(seedWorkers)
	share := (missing + int64(len(ids)) - 1) / int64(len(ids))
	for _, tenant := range ids {
		g.Go(func() error {
			n, err := seedTenant(gctx, store, tenant, share, func(n int) { _ = bar.Add(n) })
			added.Add(n)
			return err
		})
	}
	err = g.Wait()
	_ = bar.Finish()
	r.EventsAdded, r.SeedSeconds = added.Load(), time.Since(start).Seconds()
	if err != nil {
		return r, fmt.Errorf("seed history: %w", err)
	}

	// The seeded tenants' read models, rebuilt as an operator would.
	start = time.Now()
	rbar := newProgress(r.EventsBefore+r.EventsAdded, "rebuilding the seeded read models")
	var done int64
	for _, tenant := range ids {
		stats, err := workers.Rebuild(ctx, workers.CopyDeps{DB: pool, History: store}, readModels(), tenant, func(n int64) { _ = rbar.Set64(done + n) })
		if err != nil {
			_ = rbar.Finish()
			return r, fmt.Errorf("rebuild seeded tenant %s: %w", tenant, err)
		}
		done += stats.Events
	}
	_ = rbar.Finish()
	r.RebuiltEvents, r.RebuildEventsPerSec = done, rate(done, time.Since(start))
	return r, nil
}

// seedTenants returns n seed tenants' ids, creating the missing ones.
func seedTenants(ctx context.Context, adminURL string, n int) ([]chartstream.TenantID, error) {
	admin, err := postgres.Connect(ctx, postgres.Config{URL: adminURL, MaxConns: 2, ApplicationName: "chartstream-seed"})
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	dir := tenants.NewAdmin(admin)
	all, err := dir.List(ctx)
	if err != nil {
		return nil, err
	}
	have := map[string]chartstream.TenantID{}
	for _, t := range all {
		if strings.HasPrefix(t.Slug, seedSlugPrefix) {
			have[t.Slug] = t.ID
		}
	}
	ids := make([]chartstream.TenantID, 0, n)
	for i := range n {
		slug := fmt.Sprintf("%s%03d", seedSlugPrefix, i)
		if id, ok := have[slug]; ok {
			ids = append(ids, id)
			continue
		}
		t, err := dir.Create(ctx, tenants.NewTenant{Slug: slug, Name: "Seeded history", Tier: chartstream.TierStandard})
		if err != nil {
			return nil, fmt.Errorf("create seed tenant %s: %w", slug, err)
		}
		ids = append(ids, t.ID)
	}
	return ids, nil
}

// seedTenant adds about events events of clinical history to tenant and
// returns how many it added.
func seedTenant(ctx context.Context, store *eventstore.Store, tenant chartstream.TenantID, events int64, progress func(int)) (int64, error) {
	cmds := commands.New(store, nil)
	md := chartstream.Metadata{Actor: "seed", Roles: []string{string(chartstream.RoleClinician)}, CorrelationID: uuid.NewString()}
	var added int64
	count := func(n int) { added += int64(n); progress(n) }
	for p := range seedPatients {
		if added >= events {
			break
		}
		reg, err := cmds.Run(ctx, tenant, md, patient.RegisterPatient{MRN: "SEED-" + uuid.NewString()[:13],
			Name: patient.HumanName{Family: "Seeded", Given: []string{"History"}}, BirthDate: "1950-06-15", Sex: patient.SexUnknown})
		if err != nil {
			return added, fmt.Errorf("register: %w", err)
		}
		if _, err := cmds.Run(ctx, tenant, md, encounter.StartEncounter{PatientID: reg.ID, Class: encounter.ClassInpatient, Location: "Ward 1"}); err != nil {
			return added, fmt.Errorf("start encounter: %w", err)
		}
		if _, err := cmds.Run(ctx, tenant, md, medicationorder.PrescribeMedication{PatientID: reg.ID,
			Medication: patient.Coding{Code: "197361", Display: "Amlodipine 5 MG Oral Tablet", System: patient.RxNorm},
			Dose:       "5 mg", Route: "oral", Frequency: "daily", Prescriber: "seed"}); err != nil {
			return added, fmt.Errorf("prescribe: %w", err)
		}
		count(3)
		// The patients left share what is missing; each costs 3 events
		// besides its observations.
		left := int64(seedPatients - p)
		obs := max(0, (events-added-3*(left-1))/left)
		if err := seedObservations(ctx, store, tenant, reg.ID, md, obs, count); err != nil {
			return added, err
		}
	}
	return added, nil
}

// seedObservations appends n heart-rate observations to a registered
// patient's stream (version 1: its registration), in appends of seedBatch.
func seedObservations(ctx context.Context, store *eventstore.Store, tenant chartstream.TenantID, id uuid.UUID, md chartstream.Metadata, n int64, count func(int)) error {
	start := time.Now().UTC().Add(-365 * 24 * time.Hour)
	for v := int64(1); v <= n; {
		batch := make([]chartstream.NewEvent, 0, min(seedBatch, n-v+1))
		for len(batch) < cap(batch) {
			value := 50 + float64(len(batch)%60)
			payload, err := json.Marshal(patient.ObservationRecorded{ObservationID: uuid.New(), Code: "8867-4", System: patient.LOINC,
				Value: &value, Unit: "/min", EffectiveAt: start.Add(time.Duration(v+int64(len(batch))) * time.Minute)})
			if err != nil {
				return err
			}
			batch = append(batch, chartstream.NewEvent{Type: patient.TypeObservationRecorded, Payload: payload, Metadata: md})
		}
		if _, err := store.Append(ctx, tenant, patient.Stream(id), v, batch...); err != nil {
			return fmt.Errorf("append observations: %w", err)
		}
		v += int64(len(batch))
		count(len(batch))
	}
	return nil
}

func newBenchSeedCmd() *cobra.Command {
	var urls benchURLs
	var keyFile string
	var seed seedSpec
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "seed --seed-events N [--seed-tenants M] [--json]",
		Short: "Fill the event store with other tenants' history, for benches on a database with history",
		Long: `Makes the event store hold at least --seed-events events, spreading what is missing
over --seed-tenants tenants named history-NNN (created if absent): patients
registered through the commands, each with an encounter, a medication order and
heart-rate observations. Then it rebuilds those tenants' read models, timed. A
second run with the same figures adds nothing. bench projections --seed-events
does the same before measuring.`,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"DATABASE_URL", urls.db}, [2]string{"DATABASE_RELAY_URL", urls.relay},
				[2]string{"DATABASE_ADMIN_URL", urls.admin}, [2]string{"PHI_KEY_FILE", keyFile}); err != nil {
				return err
			}
			if err := seed.validate(); err != nil {
				return exitError{2, err}
			}
			if seed.Events == 0 {
				return exitError{2, errors.New("--seed-events is required")}
			}
			r, err := seedHistory(cmd.Context(), cmd.ErrOrStderr(), urls, keyFile, seed)
			if err != nil {
				return err
			}
			r.print(cmd.OutOrStdout())
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(r)
			}
			return nil
		},
	}
	f := cmd.Flags()
	stringFlag(f, &urls.db, "database-url", "DATABASE_URL", "", "PostgreSQL URL of the app role")
	stringFlag(f, &urls.relay, "database-relay-url", "DATABASE_RELAY_URL", "", "PostgreSQL URL of the relay role (counts every tenant's events)")
	stringFlag(f, &urls.admin, "database-admin-url", "DATABASE_ADMIN_URL", "", "owner URL (creates the seed tenants)")
	stringFlag(f, &keyFile, "phi-key-file", "PHI_KEY_FILE", "", "PHI master key (seals the seeded history)")
	seed.flags(f)
	f.BoolVar(&asJSON, "json", false, "print a JSON object as the last line")
	return cmd
}
