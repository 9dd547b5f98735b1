package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"strconv"
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
	"github.com/chartstream/chartstream/commands/medicationorder"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/workers"
)

// startAnalytics runs an analytics projector on the env's stream until the
// test ends.
func (e *projectorEnv) startAnalytics(cfg workers.AnalyticsConfig) *workers.AnalyticsProjector {
	e.t.Helper()
	cfg.Stream, cfg.SubjectPrefix = e.cfg.Stream, e.cfg.SubjectPrefix
	if cfg.Consumer == "" {
		cfg.Consumer = "analytics-" + e.cfg.Consumer
	}
	cfg.LeaseRetry = 200 * time.Millisecond
	p, err := workers.NewAnalyticsProjector(workers.AnalyticsDeps{
		Dial: func() (*nats.Conn, error) { return nats.Connect(e.nats.URL()) },
		DB:   testkit.MustAppPool(e.t), Events: e.store, Verifier: e.verifierOrNil(),
		Logger: slog.New(slog.NewTextHandler(e.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	e.t.Cleanup(func() { cancel(); <-done })
	return p
}

// analyticsCheckpoint is the tenant's analytics checkpoint.
func (e *projectorEnv) analyticsCheckpoint() eventstore.Cursor {
	e.t.Helper()
	ctx := testkit.Context(e.t)
	var c eventstore.Cursor
	err := postgres.InTenantTx(ctx, testkit.MustAppPool(e.t), e.tenant, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT txid, position FROM analytics_checkpoints WHERE tenant_id = $1`, e.tenant).Scan(&c.TxID, &c.Position)
		if err == pgx.ErrNoRows {
			return nil
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// clinicalLoad records, through the command handlers, encounters that are
// transferred and discharged, numeric and coded observations over several
// days, codes and units, and prescriptions.
func (e *projectorEnv) clinicalLoad(patients int) {
	e.t.Helper()
	ctx, md := testkit.Context(e.t), chartstream.Metadata{Actor: "dr-test"}
	run := commands.New(e.store, nil)
	must := func(_ chartstream.CommandResult, err error) chartstream.CommandResult {
		e.t.Helper()
		if err != nil {
			e.t.Fatal(err)
		}
		return chartstream.CommandResult{}
	}
	for i := range patients {
		p, err := run.Run(ctx, e.tenant, md, patient.RegisterPatient{MRN: "MRN-" + uuid.NewString()[:8],
			Name: patient.HumanName{Family: "Test", Given: []string{"Pat"}}, BirthDate: "1980-05-06", Sex: "other"})
		if err != nil {
			e.t.Fatal(err)
		}
		enc, err := run.Run(ctx, e.tenant, md, encounter.StartEncounter{PatientID: p.ID, Class: "inpatient", Location: []string{"Ward 1", "Ward 2", "ICU"}[i%3]})
		if err != nil {
			e.t.Fatal(err)
		}
		if i%2 == 0 {
			must(run.Run(ctx, e.tenant, md, encounter.TransferPatient{EncounterID: enc.ID, Location: "Step-down"}))
		}
		if i%3 != 1 {
			must(run.Run(ctx, e.tenant, md, encounter.DischargePatient{EncounterID: enc.ID}))
		}
		for j := range 4 {
			at := fmt.Sprintf("2026-%02d-%02dT%02d:15:00Z", 9+j%2, 1+(i+j)%28, (i*j)%24)
			obs := patient.RecordObservation{PatientID: p.ID, Code: "8867-4", System: patient.LOINC, Value: ptr(60.5 + float64(i*j%17)/3), Unit: "/min", EffectiveAt: at}
			if j == 3 {
				obs = patient.RecordObservation{PatientID: p.ID, Code: "8310-5", System: patient.LOINC, Value: ptr(36.6 + float64(i)/10), Unit: "Cel", EffectiveAt: at}
			}
			if j == 2 && i%2 == 1 {
				obs = patient.RecordObservation{PatientID: p.ID, Code: "8867-4", System: patient.LOINC, ValueCode: "LA6576-8", EffectiveAt: at}
			}
			must(run.Run(ctx, e.tenant, md, obs))
		}
		must(run.Run(ctx, e.tenant, md, medicationorder.PrescribeMedication{PatientID: p.ID, Prescriber: "dr-test",
			Medication: patient.Coding{Code: []string{"197361", "308136"}[i%2], System: patient.RxNorm}, Dose: "5 mg", Route: "oral", Frequency: "daily"}))
	}
}

// recompute folds the tenant's events into the analytics tables' rows, as
// text, independently of the projector's SQL: census flows, encounters,
// observation sums (exact, as rationals) and orders.
func recompute(t *testing.T, events []chartstream.Event) map[string]string {
	t.Helper()
	day := func(at time.Time) string { return at.UTC().Format(time.DateOnly) }
	type flows struct{ adm, dis, tin, tout int }
	type enc struct {
		day, class, admitted, location string
		started, ended                 time.Time
	}
	type obs struct {
		n, numeric int
		sum        *big.Rat
		lo, hi     *big.Rat
	}
	census, encs, observations, orders := map[string]*flows{}, map[uuid.UUID]*enc{}, map[string]*obs{}, map[string]int{}
	flow := func(d, loc string) *flows {
		k := d + "|" + loc
		if census[k] == nil {
			census[k] = &flows{}
		}
		return census[k]
	}
	for _, ev := range events {
		switch ev.Type {
		case encounter.TypeStarted:
			var p encounter.EncounterStarted
			mustDecode(t, ev, &p)
			encs[ev.Stream.ID] = &enc{day: day(ev.RecordedAt), class: string(p.Class), admitted: p.Location, location: p.Location, started: ev.RecordedAt}
			flow(day(ev.RecordedAt), p.Location).adm++
		case encounter.TypePatientTransferred:
			var p encounter.PatientTransferred
			mustDecode(t, ev, &p)
			if n := encs[ev.Stream.ID]; n != nil && n.ended.IsZero() && n.location != p.Location {
				flow(day(ev.RecordedAt), n.location).tout++
				flow(day(ev.RecordedAt), p.Location).tin++
				n.location = p.Location
			}
		case encounter.TypeDischarged:
			if n := encs[ev.Stream.ID]; n != nil && n.ended.IsZero() {
				flow(day(ev.RecordedAt), n.location).dis++
				n.ended = ev.RecordedAt
			}
		case patient.TypeObservationRecorded:
			var p patient.ObservationRecorded
			mustDecode(t, ev, &p)
			k := day(p.EffectiveAt) + "|" + p.Code + "|" + p.Unit
			if observations[k] == nil {
				observations[k] = &obs{}
			}
			o := observations[k]
			o.n++
			if p.Value != nil {
				v, _ := new(big.Rat).SetString(strconv.FormatFloat(*p.Value, 'f', -1, 64))
				o.numeric++
				if o.sum == nil {
					o.sum, o.lo, o.hi = new(big.Rat), v, v
				}
				o.sum.Add(o.sum, v)
				if v.Cmp(o.lo) < 0 {
					o.lo = v
				}
				if v.Cmp(o.hi) > 0 {
					o.hi = v
				}
			}
		case medicationorder.TypePrescribed:
			var p medicationorder.MedicationPrescribed
			mustDecode(t, ev, &p)
			orders[day(ev.RecordedAt)+"|"+p.Medication.Code]++
		}
	}
	rows := map[string]string{}
	type total struct {
		first         string
		arrivals, net int
	}
	totals := map[string]*total{}
	for k, f := range census {
		rows["census|"+k] = fmt.Sprintf("%d %d %d %d", f.adm, f.dis, f.tin, f.tout)
		d, loc, _ := strings.Cut(k, "|")
		if totals[loc] == nil {
			totals[loc] = &total{first: d}
		}
		tt := totals[loc]
		tt.first = min(tt.first, d)
		tt.arrivals += f.adm + f.tin
		tt.net += f.adm + f.tin - f.dis - f.tout
	}
	for loc, tt := range totals {
		rows["census-total|"+loc] = fmt.Sprintf("%s %d %d", tt.first, tt.arrivals, tt.net)
	}
	for id, n := range encs {
		ended := "-"
		if !n.ended.IsZero() {
			ended = n.ended.UTC().Format(time.RFC3339Nano)
		}
		rows["encounter|"+id.String()] = fmt.Sprintf("%s %s %s %s %s %s", n.day, n.class, n.admitted, n.location, n.started.UTC().Format(time.RFC3339Nano), ended)
	}
	rat := func(r *big.Rat) string {
		if r == nil {
			return "-"
		}
		return r.RatString()
	}
	for k, o := range observations {
		rows["observation|"+k] = fmt.Sprintf("%d %d %s %s %s", o.n, o.numeric, rat(o.sum), rat(o.lo), rat(o.hi))
	}
	for k, n := range orders {
		rows["orders|"+k] = strconv.Itoa(n)
	}
	return rows
}

func mustDecode(t *testing.T, ev chartstream.Event, dst any) {
	t.Helper()
	if err := json.Unmarshal(ev.Payload, dst); err != nil {
		t.Fatal(err)
	}
}

// analyticsRows reads the tenant's analytics tables as the app role, in
// recompute's form.
func (e *projectorEnv) analyticsRows() map[string]string {
	e.t.Helper()
	ctx := testkit.Context(e.t)
	rows := map[string]string{}
	rat := func(s *string) string {
		if s == nil {
			return "-"
		}
		r, ok := new(big.Rat).SetString(*s)
		if !ok {
			e.t.Fatalf("numeric %q", *s)
		}
		return r.RatString()
	}
	err := postgres.InTenantTx(ctx, testkit.MustAppPool(e.t), e.tenant, func(tx pgx.Tx) error {
		queries := []struct {
			sql  string
			scan func(pgx.Rows) error
		}{
			{`SELECT day::text, location, admissions, discharges, transfers_in, transfers_out FROM analytics_census_daily WHERE tenant_id = $1`, func(r pgx.Rows) error {
				var d, loc string
				var a, b, c, f int
				err := r.Scan(&d, &loc, &a, &b, &c, &f)
				rows["census|"+d+"|"+loc] = fmt.Sprintf("%d %d %d %d", a, b, c, f)
				return err
			}},
			{`SELECT location, first_day::text, arrivals, net FROM analytics_census_totals WHERE tenant_id = $1`, func(r pgx.Rows) error {
				var loc, first string
				var arrivals, net int
				err := r.Scan(&loc, &first, &arrivals, &net)
				rows["census-total|"+loc] = fmt.Sprintf("%s %d %d", first, arrivals, net)
				return err
			}},
			{`SELECT encounter_id, day::text, class, admitted_location, location, started_at, ended_at FROM analytics_encounters WHERE tenant_id = $1`, func(r pgx.Rows) error {
				var id uuid.UUID
				var d, class, adm, loc string
				var started time.Time
				var ended *time.Time
				err := r.Scan(&id, &d, &class, &adm, &loc, &started, &ended)
				end := "-"
				if ended != nil {
					end = ended.UTC().Format(time.RFC3339Nano)
				}
				rows["encounter|"+id.String()] = fmt.Sprintf("%s %s %s %s %s %s", d, class, adm, loc, started.UTC().Format(time.RFC3339Nano), end)
				return err
			}},
			{`SELECT day::text, code, unit, observations, numeric_count, value_sum::text, value_min::text, value_max::text FROM analytics_observations_daily WHERE tenant_id = $1`, func(r pgx.Rows) error {
				var d, code, unit string
				var n, numeric int
				var sum, lo, hi *string
				err := r.Scan(&d, &code, &unit, &n, &numeric, &sum, &lo, &hi)
				rows["observation|"+d+"|"+code+"|"+unit] = fmt.Sprintf("%d %d %s %s %s", n, numeric, rat(sum), rat(lo), rat(hi))
				return err
			}},
			{`SELECT day::text, code, orders FROM analytics_medication_orders_daily WHERE tenant_id = $1`, func(r pgx.Rows) error {
				var d, code string
				var n int
				err := r.Scan(&d, &code, &n)
				rows["orders|"+d+"|"+code] = strconv.Itoa(n)
				return err
			}},
		}
		for _, q := range queries {
			rs, err := tx.Query(ctx, q.sql, e.tenant)
			if err != nil {
				return err
			}
			for rs.Next() {
				if err := q.scan(rs); err != nil {
					rs.Close()
					return err
				}
			}
			rs.Close()
			if err := rs.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return rows
}

// wantRecomputed fails the test unless the analytics tables equal the
// recomputation from the event store, of at least minRows rows (or the
// comparison proves little).
func (e *projectorEnv) wantRecomputed(events []chartstream.Event, minRows int) {
	e.t.Helper()
	want, got := recompute(e.t, events), e.analyticsRows()
	for k, w := range want {
		if got[k] != w {
			e.t.Errorf("%s: table has %q, the event store says %q", k, got[k], w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			e.t.Errorf("%s: table has %q, the event store nothing", k, g)
		}
	}
	if len(want) < minRows {
		e.t.Fatalf("the load made only %d rows; the comparison proves little", len(want))
	}
}

// After a clinical load delivered with every message twice, some missing
// (the gaps are read from the event store) and a backlog read ahead, the
// analytics tables equal a recomputation from the event store; a second
// projector on the same consumer, with every message published again,
// changes nothing.
func TestAnalyticsEqualARecomputationFromTheEventStore(t *testing.T) {
	t.Parallel()
	e := newProjectorEnv(t)
	e.clinicalLoad(12)
	events := e.committed()
	var delivered []chartstream.Event
	for i, ev := range events {
		if i%7 != 3 || i == len(events)-1 {
			delivered = append(delivered, ev)
		}
	}
	e.publishEvents(delivered, true)
	p := e.startAnalytics(workers.AnalyticsConfig{ReadAheadAt: 20})
	last := eventstore.CursorOf(events[len(events)-1])
	waitUntil(t, 20*time.Second, "the analytics checkpoint reaches the last event", func() bool { return e.analyticsCheckpoint() == last })
	e.wantRecomputed(events, 40)
	if p.SetAside() != 0 {
		t.Errorf("%d events set aside, want none", p.SetAside())
	}

	// Everything again, in another order: nothing changes.
	for i, j := 0, len(events)-1; i < j; i, j = i+1, j-1 {
		events[i], events[j] = events[j], events[i]
	}
	e.publishEvents(events, false)
	e.startAnalytics(workers.AnalyticsConfig{})
	waitUntil(t, 20*time.Second, "the consumer has no message pending", func() bool {
		info, err := e.js.Consumer(testkit.Context(t), e.cfg.Stream, "analytics-"+e.cfg.Consumer)
		if err != nil {
			return false
		}
		ci, err := info.Info(testkit.Context(t))
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0
	})
	e.wantRecomputed(e.committed(), 40)
}

// An event the analytics cannot apply (an observation dated 1850, for
// which no partition may be made) is set aside in analytics_dead_letters,
// with its checkpoint moved past it, and its message copied to the
// dead-letter stream; the events after it are applied.
func TestAnalyticsSetAsideAnEventThatCannotBeApplied(t *testing.T) {
	t.Parallel()
	e := newProjectorEnv(t)
	ctx, md := testkit.Context(t), chartstream.Metadata{Actor: "dr-test"}
	id := e.clinic()
	if _, err := commands.New(e.store, nil).Run(ctx, e.tenant, md, patient.RecordObservation{PatientID: id, Code: "8867-4",
		System: patient.LOINC, Value: ptr(80.0), Unit: "/min", EffectiveAt: "1850-01-01T00:00:00Z"}); err != nil {
		t.Fatal(err)
	}
	e.clinicalLoad(1)
	events := e.publish(false)
	p := e.startAnalytics(workers.AnalyticsConfig{Consumer: "analytics-dl-" + e.cfg.Consumer})
	last := eventstore.CursorOf(events[len(events)-1])
	waitUntil(t, 20*time.Second, "the analytics checkpoint reaches the last event", func() bool { return e.analyticsCheckpoint() == last })
	if p.SetAside() != 1 {
		t.Fatalf("%d events set aside, want 1", p.SetAside())
	}
	var poisoned uuid.UUID
	for _, ev := range events {
		if ev.Type == patient.TypeObservationRecorded {
			var o patient.ObservationRecorded
			mustDecode(t, ev, &o)
			if o.EffectiveAt.Year() == 1850 {
				poisoned = ev.ID
			}
		}
	}
	var dead int
	err := postgres.InTenantTx(ctx, testkit.MustAppPool(t), e.tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM analytics_dead_letters WHERE tenant_id = $1 AND event_id = $2 AND reason = 'sqlstate 22008'`,
			e.tenant, poisoned).Scan(&dead)
	})
	if err != nil || dead != 1 {
		t.Fatalf("dead letter rows for the 1850 observation: %d (%v), want 1", dead, err)
	}
	var rest []chartstream.Event
	for _, ev := range events {
		if ev.ID != poisoned {
			rest = append(rest, ev)
		}
	}
	e.wantRecomputed(rest, 8)
	dl, err := e.js.OrderedConsumer(ctx, "CLINICAL_DEADLETTER", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"chartstream.deadletter.analytics-dl-" + e.cfg.Consumer}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := dl.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("no copy on the dead-letter stream: %v", err)
	}
	if got := m.Headers().Get("Chartstream-Dead-Letter-Reason"); !strings.Contains(got, poisoned.String()) {
		t.Errorf("dead-letter copy's reason %q does not name event %s", got, poisoned)
	}
}

// A projector limited to some tenants takes no other tenant's events: it
// leaves them to the projector of the database that serves them (or, in
// tests, to the test that applies them itself).
func TestAnalyticsLimitedToTenantsLeavesOthersAlone(t *testing.T) {
	t.Parallel()
	e := newProjectorEnv(t)
	e.clinicalLoad(2)
	e.publishEvents(e.committed(), true)
	consumer := "analytics-only-" + e.cfg.Consumer
	e.startAnalytics(workers.AnalyticsConfig{Consumer: consumer, Tenants: []chartstream.TenantID{testkit.MustTenant(t)}})
	waitUntil(t, 20*time.Second, "the consumer has no message pending", func() bool {
		info, err := e.js.Consumer(testkit.Context(t), e.cfg.Stream, consumer)
		if err != nil {
			return false
		}
		i, err := info.Info(testkit.Context(t))
		return err == nil && i.NumPending == 0 && i.NumAckPending == 0
	})
	if cp := e.analyticsCheckpoint(); cp != (eventstore.Cursor{}) {
		t.Errorf("the env's tenant, not among the projector's, has an analytics checkpoint %v", cp)
	}
	if rows := e.analyticsRows(); len(rows) != 0 {
		t.Errorf("the env's tenant has %d analytics rows, want none", len(rows))
	}
}
