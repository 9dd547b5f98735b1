package workers_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
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

// publishRelayed publishes events as the relay does: in order, each naming
// the tenant's event before it.
func (e *projectorEnv) publishRelayed(events []chartstream.Event) {
	e.t.Helper()
	ctx := testkit.Context(e.t)
	prev := map[chartstream.TenantID]eventstore.Cursor{}
	for _, ev := range events {
		m, err := workers.EncodeMessage(e.cfg.SubjectPrefix, ev)
		if err != nil {
			e.t.Fatal(err)
		}
		workers.SetPrevious(m, prev[ev.Tenant])
		prev[ev.Tenant] = eventstore.CursorOf(ev)
		if e.signer != nil {
			workers.Sign(m, e.signer)
		}
		if _, err := e.js.PublishMsg(ctx, m); err != nil {
			e.t.Fatal(err)
		}
	}
}

// observe records n observations on the patient.
func (e *projectorEnv) observe(id uuid.UUID, n int) {
	e.t.Helper()
	ctx := testkit.Context(e.t)
	record := commands.New(e.store, nil)
	for i := range n {
		_, err := record.Run(ctx, e.tenant, chartstream.Metadata{Actor: "monitor"}, patient.RecordObservation{PatientID: id,
			Code: "8867-4", System: patient.LOINC, Value: ptr(60.0 + float64(i)), Unit: "/min", EffectiveAt: "2026-11-26T10:00:00Z"})
		if err != nil {
			e.t.Fatal(err)
		}
	}
}

// observationRows counts the tenant's rows in the live observations table.
func observationRows(t *testing.T, tenant chartstream.TenantID) int {
	t.Helper()
	ctx := testkit.Context(t)
	var n int
	err := postgres.InReadModelTx(ctx, testkit.MustAppPool(t), tenant, postgres.LiveReadModels, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM observations WHERE tenant_id = $1`, tenant).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A projector killed with messages in hand never acks them; JetStream
// hands them out again only after AckWait, by which time the next
// projector has been given the tenant's later events. Those must not move
// the checkpoint past the ones still out: the projector sees the gap (the
// message names its predecessor) and reads it from the event store, and
// the late redeliveries change nothing.
func TestProjectorRestartWithUnackedMessagesSkipsNothing(t *testing.T) {
	t.Parallel()
	e := newProjectorEnv(t)
	// AckWait long enough for the catch-up on a loaded machine: the point
	// is that it comes before the redeliveries.
	e.cfg.AckWait, e.cfg.HoldFor = 15*time.Second, time.Second
	id := e.clinic()
	e.observe(id, 6)
	events := e.committed()
	e.publishRelayed(events)

	// The projector that dies: it takes the first half and never acks.
	ctx := testkit.Context(t)
	cons, err := e.js.CreateOrUpdateConsumer(ctx, e.cfg.Stream, jetstream.ConsumerConfig{
		Durable: e.cfg.Consumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: e.cfg.AckWait,
		MaxAckPending: 10_000, DeliverPolicy: jetstream.DeliverAllPolicy, FilterSubjects: []string{e.cfg.SubjectPrefix + ".>"},
	})
	if err != nil {
		t.Fatal(err)
	}
	half := len(events) / 2
	batch, err := cons.Fetch(half, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	taken := 0
	for range batch.Messages() {
		taken++
	}
	if taken != half {
		t.Fatalf("the dying projector took %d messages, want %d", taken, half)
	}

	start := time.Now()
	e.start()
	waitUntil(t, e.cfg.AckWait-3*time.Second, "every observation is projected before the unacked ones come back", func() bool {
		return observationRows(t, e.tenant) == 7 // the clinic's and the monitor's
	})
	t.Logf("caught up in %s, AckWait %s", time.Since(start).Round(time.Millisecond), e.cfg.AckWait)
	// The late redeliveries arrive and are done with (acked); nothing
	// doubles.
	waitUntil(t, e.cfg.AckWait+10*time.Second, "the redeliveries are acked", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.NumRedelivered == 0
	})
	if n := observationRows(t, e.tenant); n != 7 {
		t.Errorf("%d observations after the redeliveries, want 7", n)
	}
}

// One tenant that cannot progress (here a rebuild holds its read models)
// holds up no other tenant; once it can progress again it catches up, also
// after its held messages were released back (acked) to spare the other
// tenants the consumer's pending limit.
func TestStuckTenantDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	e := newProjectorEnv(t)
	e.cfg.AckWait, e.cfg.HoldFor, e.cfg.Lanes = 4*time.Second, time.Second, 1
	stuck := e.tenant
	stuckPatient := e.clinic()
	e.tenant = testkit.MustTenant(t)
	other := e.tenant
	otherPatient := e.clinic()

	// Hold the stuck tenant's read models, as a rebuild does.
	ctx := testkit.Context(t)
	conn, err := testkit.MustAppPool(t).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, workers.TenantLockKey(stuck)); err != nil {
		t.Fatal(err)
	}
	locked := true
	unlock := func() {
		if locked {
			_, _ = conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, workers.TenantLockKey(stuck))
			locked = false
		}
	}
	defer unlock()

	e.tenant = stuck
	e.observe(stuckPatient, 3)
	stuckEvents := e.committed()
	e.tenant = other
	e.observe(otherPatient, 3)
	otherEvents := e.committed()
	// The stuck tenant's messages come first, with one lane.
	e.publishRelayed(stuckEvents)
	e.publishRelayed(otherEvents)
	e.start()
	waitUntil(t, 15*time.Second, "the other tenant is projected while the first is stuck", func() bool {
		return observationRows(t, other) == 4 // the clinic's and the monitor's
	})
	if n := observationRows(t, stuck); n != 0 {
		t.Fatalf("the held tenant got %d observations", n)
	}
	// Past HoldFor, the stuck tenant's messages are released (acked).
	time.Sleep(e.cfg.HoldFor + 1500*time.Millisecond)
	unlock()
	waitUntil(t, 15*time.Second, "the stuck tenant catches up from the event store", func() bool {
		return observationRows(t, stuck) == 4
	})
}

// Events whose messages never came (a stream lost, messages released) are
// found by the sweep, from the event store, not from any record of what
// was delivered.
func TestSweepProjectsWhatNoMessageAnnounced(t *testing.T) {
	t.Parallel()
	e := newProjectorEnv(t)
	e.cfg.SweepInterval = 300 * time.Millisecond
	e.cfg.Tenants = []chartstream.TenantID{e.tenant} // other tests' tenants are theirs
	id := e.clinic()
	e.observe(id, 4)
	e.committed()
	e.heads = mustStore(t, "DATABASE_RELAY_URL")
	e.start()
	waitUntil(t, 15*time.Second, "the sweep projects the tenant's events", func() bool {
		return observationRows(t, e.tenant) == 5
	})
	e.observe(id, 2)
	waitUntil(t, 15*time.Second, "later events too", func() bool {
		return observationRows(t, e.tenant) == 7
	})
}

// A message whose body is not an event is dead-lettered; one that names an
// event this store never held (and not as the next of the tenant's events)
// is dead-lettered too, rather than stalling the tenant.
func TestProjectorDeadLettersForgedMessages(t *testing.T) {
	t.Parallel()
	e := newProjectorEnv(t)
	id := e.clinic()
	events := e.committed()
	forged := events[len(events)-1]
	forged.ID, forged.Position, forged.TxID = uuid.New(), forged.Position+1_000_000_000, forged.TxID+1_000_000_000
	e.publishRelayed(events)
	m, err := workers.EncodeMessage(e.cfg.SubjectPrefix, forged)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(testkit.Context(t), m); err != nil {
		t.Fatal(err)
	}
	junk := nats.NewMsg(fmt.Sprintf("%s.%s.patient.x", e.cfg.SubjectPrefix, e.tenant))
	junk.Data = []byte(`{"not":"an event"}`)
	if _, err := e.js.PublishMsg(testkit.Context(t), junk); err != nil {
		t.Fatal(err)
	}
	p := e.start()
	waitUntil(t, 10*time.Second, "both are dead-lettered", func() bool { return p.DeadLettered() == 2 })
	c, err := chart.PatientChart(testkit.Context(t), testkit.MustAppPool(t), e.tenant, id)
	if err != nil || len(c.Vitals) != 1 || len(c.Encounters) != 1 {
		t.Errorf("the tenant's real events were not all projected: %+v, %v", c, err)
	}
}

// flakyProjection fails once, when it applies the event failOn, with an
// error a retry cures (a serialization failure), as a database under load
// does.
type flakyProjection struct {
	workers.Projection
	failOn uuid.UUID
	failed atomic.Bool
}

func (f *flakyProjection) Apply(ctx context.Context, tx pgx.Tx, e chartstream.Event) error {
	if e.ID == f.failOn && f.failed.CompareAndSwap(false, true) {
		return &pgconn.PgError{Code: "40001", Message: "could not serialize access"}
	}
	return f.Projection.Apply(ctx, tx, e)
}

// A batch whose transaction fails is applied again, whole: none of its
// messages counts as done until its events are in the read models. It
// fails on the tenant's last event, so no later message's gap could make
// up for a batch wrongly counted done; and there is no sweep here.
func TestAFailedBatchLosesNoEvent(t *testing.T) {
	t.Parallel()
	e := newProjectorEnv(t)
	id := e.clinic()
	e.observe(id, 5)
	events := e.committed()
	e.projections = []workers.Projection{chart.Projector{}, &flakyProjection{Projection: observations.Projector{}, failOn: events[len(events)-1].ID},
		census.Projector{}, orders.Projector{}}
	e.publishRelayed(events)
	p := e.start()
	waitUntil(t, 10*time.Second, "every observation is projected after the failure", func() bool {
		return observationRows(t, e.tenant) == 6
	})
	if p.DeadLettered() != 0 {
		t.Errorf("%d events set aside for a failure a retry cures", p.DeadLettered())
	}
}

// Anyone who can publish on the stream's subjects could otherwise put
// facts into a tenant's read models: a well-formed message naming a new
// event, next in line after the tenant's checkpoint, is applied from its
// body. With the relay's signature required, one unsigned or signed by
// another key is dead-lettered and the read models keep only what the
// event store holds.
func TestProjectorRefusesMessagesNotSignedByTheRelay(t *testing.T) {
	t.Parallel()
	e := newProjectorEnv(t)
	relayKey, strangerKey := mustSigner(t), mustSigner(t)
	e.verifier = relayKey.Public()
	id := e.clinic()
	events := e.committed()
	e.signer = relayKey
	e.publishRelayed(events)
	p := e.start()
	waitUntil(t, 10*time.Second, "the genuine events are projected", func() bool { return observationRows(t, e.tenant) == 1 })

	// A forged observation, next after the tenant's last event.
	last := events[len(events)-1]
	forged := last
	forged.ID, forged.Version, forged.Position, forged.TxID = uuid.New(), last.Version+1, last.Position+1, last.TxID
	forged.Type, forged.Sealed = patient.TypeObservationRecorded, nil
	forged.Stream = patient.Stream(id)
	forged.Payload = []byte(fmt.Sprintf(`{"observation_id":%q,"code":"8867-4","system":%q,"value":999,"unit":"/min","effective_at":"2026-11-26T10:00:00Z"}`, uuid.New(), patient.LOINC))
	for _, signer := range []*signing.Signer{nil, strangerKey} {
		m, err := workers.EncodeMessage(e.cfg.SubjectPrefix, forged)
		if err != nil {
			t.Fatal(err)
		}
		workers.SetPrevious(m, eventstore.CursorOf(last))
		if signer != nil {
			workers.Sign(m, signer)
		}
		m.Header.Set(nats.MsgIdHdr, uuid.NewString())
		if _, err := e.js.PublishMsg(testkit.Context(t), m); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 10*time.Second, "both forgeries are dead-lettered", func() bool { return p.DeadLettered() == 2 })
	if n := observationRows(t, e.tenant); n != 1 {
		t.Errorf("%d observations in the read model, want only the genuine one", n)
	}
}

func mustSigner(t *testing.T) *signing.Signer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key")
	if _, err := signing.CreateKeyFiles(path); err != nil {
		t.Fatal(err)
	}
	s, err := signing.LoadSigner(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
