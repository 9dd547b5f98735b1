package workers_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/encounter"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/signing"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/projections/census"
	"github.com/chartstream/chartstream/projections/chart"
	"github.com/chartstream/chartstream/projections/observations"
	"github.com/chartstream/chartstream/projections/orders"
	"github.com/chartstream/chartstream/workers"
)

// allProjections are the read models the platform runs.
var allProjections = []workers.Projection{chart.Projector{}, observations.Projector{}, census.Projector{}, orders.Projector{}}

// projectorEnv is one test's projector on its own stream, fed by the test
// (not the relay), so it sees only the test's tenant's events.
type projectorEnv struct {
	t      *testing.T
	js     jetstream.JetStream
	store  *eventstore.Store
	cfg    workers.ProjectorConfig
	tenant chartstream.TenantID
	// heads, when set, lets the projector sweep.
	heads workers.HeadSource
	// projections, when set, replace allProjections.
	projections []workers.Projection
	// signer signs what publishRelayed publishes; verifier, when set,
	// makes the projector require signatures.
	signer   *signing.Signer
	verifier *signing.Verifier
	// nats is the test's server.
	nats *testkit.NATSServer
}

func newProjectorEnv(t *testing.T) *projectorEnv {
	t.Helper()
	id := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	srv := testkit.MustNATSServer(t)
	js, err := jetstream.New(srv.MustConnect(t))
	if err != nil {
		t.Fatal(err)
	}
	e := &projectorEnv{t: t, js: js, nats: srv, store: mustStoreWith(t, "DATABASE_URL", commands.EventSpecs()), tenant: testkit.MustTenant(t),
		cfg: workers.ProjectorConfig{Stream: "P_" + strings.ToUpper(id), SubjectPrefix: "p" + id, Consumer: "projections-" + id,
			Lanes: 2, LeaseRetry: 200 * time.Millisecond, MaxAttempts: 2}}
	if _, err := js.CreateStream(testkit.Context(t), jetstream.StreamConfig{Name: e.cfg.Stream, Subjects: []string{e.cfg.SubjectPrefix + ".>"}}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *projectorEnv) projectionsOrAll() []workers.Projection {
	if e.projections != nil {
		return e.projections
	}
	return allProjections
}

// verifierOrNil keeps a nil *signing.Verifier from becoming a non-nil
// interface.
func (e *projectorEnv) verifierOrNil() workers.Verifier {
	if e.verifier == nil {
		return nil
	}
	return e.verifier
}

func (e *projectorEnv) start() *workers.Projector {
	e.t.Helper()
	p, err := workers.NewProjector(workers.ProjectorDeps{
		JetStream: e.js, DB: testkit.MustAppPool(e.t), Events: e.store, Heads: e.heads, Projections: e.projectionsOrAll(),
		Verifier: e.verifierOrNil(),
		Logger:   slog.New(slog.NewTextHandler(e.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	e.t.Cleanup(func() { cancel(); <-done })
	return p
}

// publish publishes the tenant's events as the relay would; dup publishes
// each a second time under another message id, as a redelivery would.
func (e *projectorEnv) publish(dup bool) []chartstream.Event {
	e.t.Helper()
	events := e.committed()
	e.publishEvents(events, dup)
	return events
}

// publishAfter publishes the tenant's events of type typ, as the relay
// would after the events published before.
func (e *projectorEnv) publishAfter(typ string) {
	e.t.Helper()
	var events []chartstream.Event
	for _, ev := range e.committed() {
		if ev.Type == typ {
			events = append(events, ev)
		}
	}
	e.publishEvents(events, false)
}

// committed returns every event the tenant committed. ReadAll withholds
// events behind the horizon while another test holds a transaction open,
// so it waits until ReadAll returns them all.
func (e *projectorEnv) committed() []chartstream.Event {
	e.t.Helper()
	ctx := testkit.Context(e.t)
	var n int
	err := postgres.InTenantTx(ctx, testkit.MustAppPool(e.t), e.tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM events WHERE tenant_id = $1`, e.tenant).Scan(&n)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	var events []chartstream.Event
	waitUntil(e.t, 10*time.Second, "ReadAll returns every committed event", func() bool {
		events, _, err = e.store.ReadAll(ctx, eventstore.Filter{Tenant: e.tenant}, eventstore.Cursor{}, 1000)
		return err == nil && len(events) == n
	})
	return events
}

func (e *projectorEnv) publishEvents(events []chartstream.Event, dup bool) {
	e.t.Helper()
	ctx := testkit.Context(e.t)
	for _, ev := range events {
		for copyN := 0; copyN < 2 && (copyN == 0 || dup); copyN++ {
			m, err := workers.EncodeMessage(e.cfg.SubjectPrefix, ev)
			if err != nil {
				e.t.Fatal(err)
			}
			m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("%s-%d", ev.ID, copyN))
			if _, err := e.js.PublishMsg(ctx, m); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

// clinic records a patient's first hours through the real command handlers.
func (e *projectorEnv) clinic() uuid.UUID {
	e.t.Helper()
	ctx, md := testkit.Context(e.t), chartstream.Metadata{Actor: "dr-test"}
	p, err := commands.New(e.store, nil).Run(ctx, e.tenant, md, patient.RegisterPatient{
		MRN: "MRN-" + uuid.NewString()[:6], Name: patient.HumanName{Family: "Lovelace", Given: []string{"Ada"}}, BirthDate: "1990-01-02", Sex: "female"})
	if err != nil {
		e.t.Fatal(err)
	}
	steps := []func() error{
		func() error {
			_, err := commands.New(e.store, nil).Run(ctx, e.tenant, md, patient.RecordAllergy{PatientID: p.ID,
				Substance: patient.Coding{Code: "7980", Display: "Penicillin G", System: patient.RxNorm}, Criticality: "high", Reaction: "hives"})
			return err
		},
		func() error {
			_, err := commands.New(e.store, nil).Run(ctx, e.tenant, md, patient.RecordObservation{PatientID: p.ID,
				Code: "8867-4", System: patient.LOINC, Value: ptr(72.0), Unit: "/min", EffectiveAt: "2026-11-26T10:00:00Z"})
			return err
		},
		func() error {
			_, err := commands.New(e.store, nil).Run(ctx, e.tenant, md, encounter.StartEncounter{PatientID: p.ID, Class: "inpatient", Location: "Ward 3B"})
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			e.t.Fatal(err)
		}
	}
	return p.ID
}

func ptr[T any](v T) *T { return &v }

// checksum digests the tenant's rows of every read model table in schema.
func (e *projectorEnv) checksum(schema string) string {
	e.t.Helper()
	ctx := testkit.Context(e.t)
	h := md5.New()
	err := postgres.InTenantTx(ctx, testkit.MustAppPool(e.t), e.tenant, func(tx pgx.Tx) error {
		for _, p := range []interface{ Tables() []string }{chart.Projector{}, observations.Projector{}, census.Projector{}, orders.Projector{}} {
			for _, table := range p.Tables() {
				var digest *string
				q := fmt.Sprintf(`SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM %s.%s t WHERE tenant_id = $1`, schema, table)
				if err := tx.QueryRow(ctx, q, e.tenant).Scan(&digest); err != nil {
					return err
				}
				if digest != nil {
					fmt.Fprintf(h, "%s=%s;", table, *digest)
				}
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// liveSchema is the schema of the tenant's live copy of the read models.
func (e *projectorEnv) liveSchema() string {
	e.t.Helper()
	ctx := testkit.Context(e.t)
	var schema string
	err := postgres.InTenantTx(ctx, testkit.MustAppPool(e.t), e.tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT split_part(chartstream_read_models($1, false), ',', 1)`, e.tenant).Scan(&schema)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return schema
}

func (e *projectorEnv) dump(schema string) {
	ctx := testkit.Context(e.t)
	_ = postgres.InTenantTx(ctx, testkit.MustAppPool(e.t), e.tenant, func(tx pgx.Tx) error {
		for _, table := range []string{"patient_charts", "chart_allergies", "chart_conditions", "chart_vitals", "observations", "encounters", "medication_orders"} {
			rows, _ := tx.Query(ctx, fmt.Sprintf(`SELECT t::text FROM %s.%s t WHERE tenant_id = $1`, schema, table), e.tenant)
			for rows.Next() {
				var r string
				_ = rows.Scan(&r)
				e.t.Logf("%s.%s: %s", schema, table, r)
			}
			rows.Close()
		}
		return nil
	})
}

// Duplicated and redelivered messages leave the read models exactly as
// applying each event once does (checked against a replay into the rebuild
// twins), and a poison message is dead-lettered without holding up the rest.
func TestProjectorAppliesDuplicatesOnceAndDeadLettersPoison(t *testing.T) {
	t.Parallel()
	e := newProjectorEnv(t)
	patientID := e.clinic()
	// Poison first: it must not block the tenant's good events behind it.
	poison := nats.NewMsg(e.cfg.SubjectPrefix + "." + e.tenant.String() + ".patient.patient.registered")
	poison.Data = []byte(`{"not":"an event"}`)
	poison.Header.Set(workers.HeaderTenant, e.tenant.String())
	if _, err := e.js.PublishMsg(testkit.Context(t), poison); err != nil {
		t.Fatal(err)
	}
	events := e.publish(true)
	p := e.start()

	ctx := testkit.Context(t)
	pool := testkit.MustAppPool(t)
	waitUntil(t, 15*time.Second, "the chart shows the allergy, vital and encounter", func() bool {
		c, err := chart.PatientChart(ctx, pool, e.tenant, patientID)
		return err == nil && len(c.Allergies) == 1 && len(c.Vitals) == 1 && len(c.Encounters) == 1
	})
	waitUntil(t, 10*time.Second, "the poison message is dead-lettered", func() bool { return p.DeadLettered() == 1 })
	live := e.checksum("public")

	// Replay each event once into the rebuild twins.
	err := postgres.InTenantTx(ctx, pool, e.tenant, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL search_path = rebuild, public`); err != nil {
			return err
		}
		for i := range events {
			if err := e.store.Open(ctx, &events[i]); err != nil {
				return err
			}
		}
		return workers.ApplyEvents(ctx, tx, allProjections, events)
	})
	if err != nil {
		t.Fatal(err)
	}
	if replay := e.checksum("rebuild"); replay != live {
		e.dump("public")
		e.dump("rebuild")
		t.Errorf("read models after duplicated delivery (%s) differ from a single replay (%s)", live, replay)
	}
}

func mustUUID(t *testing.T, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// The set-based batch path gives the read models the one-event-at-a-time
// path gives, also for observations out of time order and repeated codes.
func TestBatchApplyEqualsOneByOne(t *testing.T) {
	t.Parallel()
	e := newProjectorEnv(t)
	ctx, md := testkit.Context(t), chartstream.Metadata{Actor: "nurse-test"}
	ids := []uuid.UUID{e.clinic(), e.clinic()}
	record := commands.New(e.store, nil)
	for i, at := range []string{"2026-11-26T12:00:00Z", "2026-11-26T09:00:00Z", "2026-11-26T12:00:00Z", "2026-11-26T15:30:00Z", "2026-11-26T08:00:00Z"} {
		for _, code := range []string{"8867-4", "8310-5", "2345-7"} { // pulse, temperature (vitals), glucose (not)
			_, err := record.Run(ctx, e.tenant, md, patient.RecordObservation{PatientID: ids[i%2], Code: code, System: patient.LOINC,
				Value: ptr(36.6 + float64(i)/10), Unit: "1", EffectiveAt: at})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	events := e.publish(false) // reads them back, opened below
	for i := range events {
		if err := e.store.Open(ctx, &events[i]); err != nil {
			t.Fatal(err)
		}
	}
	pool := testkit.MustAppPool(t)
	err := postgres.InTenantTx(ctx, pool, e.tenant, func(tx pgx.Tx) error {
		for _, p := range allProjections {
			for _, ev := range events {
				if err := p.Apply(ctx, tx, ev); err != nil {
					return err
				}
			}
		}
		if _, err := tx.Exec(ctx, `SET LOCAL search_path = rebuild, public`); err != nil {
			return err
		}
		return workers.ApplyEvents(ctx, tx, allProjections, events)
	})
	if err != nil {
		t.Fatal(err)
	}
	if one, batch := e.checksum("public"), e.checksum("rebuild"); one != batch {
		e.dump("public")
		e.dump("rebuild")
		t.Errorf("one by one (%s) and batched (%s) read models differ", one, batch)
	}
}
