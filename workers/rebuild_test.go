package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/patient"

	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/projections/census"
	"github.com/chartstream/chartstream/projections/chart"
	"github.com/chartstream/chartstream/projections/observations"
	"github.com/chartstream/chartstream/projections/orders"
	"github.com/chartstream/chartstream/workers"
)

var rebuildable = []workers.RebuildProjection{chart.Projector{}, observations.Projector{}, census.Projector{}, orders.Projector{}}

// A rebuild from the event store gives read models equal to the live ones,
// swaps them in without a moment where reads find nothing, and leaves the
// twins empty.
func TestRebuildEqualsLiveAndReadsKeepWorking(t *testing.T) {
	t.Parallel()
	e := newProjectorEnv(t)
	var patients []string
	for i := 0; i < 3; i++ {
		patients = append(patients, e.clinic().String())
	}
	e.publish(false)
	e.start()
	ctx := testkit.Context(t)
	pool := testkit.MustAppPool(t)
	first := mustUUID(t, patients[0])
	waitUntil(t, 15*time.Second, "the projector applies every event", func() bool {
		st, err := workers.Status(ctx, pool, []string{"chart", "observations", "census", "orders"}, e.tenant)
		if err != nil {
			return false
		}
		for _, s := range st {
			if s.LagEvents != 0 || s.Position == 0 {
				return false
			}
		}
		return true
	})
	before := e.liveSchema()
	live := e.checksum(before)

	// A reader polls the chart throughout the rebuild.
	var misses, reads atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := chart.PatientChart(ctx, pool, e.tenant, first); err != nil {
				misses.Add(1)
			}
			reads.Add(1)
		}
	}()
	stats, err := workers.Rebuild(ctx, workers.CopyDeps{DB: pool, History: e.store}, rebuildable, e.tenant, nil)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if stats.Events == 0 {
		t.Fatal("the rebuild replayed no events")
	}
	if misses.Load() != 0 {
		t.Errorf("%d of %d reads during the rebuild found no chart", misses.Load(), reads.Load())
	}
	after := e.liveSchema()
	if after == before {
		t.Errorf("the live copy is still %s: the copies did not switch", after)
	}
	if rebuilt := e.checksum(after); rebuilt != live {
		e.dump(after)
		t.Errorf("read models after the rebuild (%s) differ from the live ones (%s)", rebuilt, live)
	}
	var leftover int
	err = postgres.InTenantTx(ctx, pool, e.tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, fmt.Sprintf(`SELECT (SELECT count(*) FROM %[1]s.patient_charts WHERE tenant_id = $1)
			+ (SELECT count(*) FROM %[1]s.projection_checkpoints WHERE tenant_id = $1)`, before), e.tenant).Scan(&leftover)
	})
	if err != nil {
		t.Fatal(err)
	}
	if leftover != 0 {
		t.Errorf("%d rows left in the standby copy", leftover)
	}
}

// A rebuild holds no transaction open while it replays and catches up, so
// the event store's horizon keeps moving and the relay keeps publishing
// every other tenant's events, however long the rebuild takes.
func TestRebuildKeepsTheRelayPublishing(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	var mu sync.Mutex
	acked := map[uuid.UUID]time.Time{}
	e.startRelay(func(p workers.PublishedParams) {
		mu.Lock()
		acked[p.Event.ID] = p.AckedAt
		mu.Unlock()
	}, nil)
	ctx := testkit.Context(t)
	rebuilt := testkit.MustTenant(t)
	for range 20 {
		ev := chartstream.NewEvent{Type: "test.happened", Payload: json.RawMessage(`{}`)}
		if _, err := e.writer.Append(ctx, rebuilt, chartstream.StreamRef{Type: "patient", ID: uuid.New()}, chartstream.NoStream, ev); err != nil {
			t.Fatal(err)
		}
	}

	// The test's tenant writes throughout the rebuild.
	committed := map[uuid.UUID]time.Time{}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			ev := chartstream.NewEvent{ID: uuid.Must(uuid.NewV7()), Type: "test.happened", Payload: json.RawMessage(`{}`)}
			if _, err := e.writer.Append(context.Background(), e.tenant, chartstream.StreamRef{Type: "patient", ID: uuid.New()}, chartstream.NoStream, ev); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			committed[ev.ID] = time.Now()
			mu.Unlock()
		}
	}()
	// Paused long enough to tell a held horizon (the pause and more) from a
	// loaded machine's delays (other tests' short transactions).
	const pause = 5 * time.Second
	deps := workers.WhilePaused(workers.CopyDeps{DB: testkit.MustAppPool(t), History: e.writer}, func() { time.Sleep(pause) })
	if _, err := workers.Rebuild(ctx, deps, rebuildable, rebuilt, nil); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-done
	e.waitPublished(len(committed), 30*time.Second)
	mu.Lock()
	defer mu.Unlock()
	var worst time.Duration
	for id, at := range committed {
		if a, ok := acked[id]; ok && a.Sub(at) > worst {
			worst = a.Sub(at)
		}
	}
	if worst > pause/2 {
		t.Errorf("during the rebuild an event took %s from commit to JetStream", worst.Round(time.Millisecond))
	}
}

// An event a projection cannot apply (here a condition whose onset is no
// date, appended straight to the store past the command's validation) is
// set aside by the live projector and by a rebuild alike: reported, not
// fatal, and the tenant's other events are applied.
func TestRebuildReportsEventsSetAside(t *testing.T) {
	t.Parallel()
	e := newProjectorEnv(t)
	id := e.clinic()
	ctx := testkit.Context(t)
	bad := chartstream.NewEvent{Type: patient.TypeConditionDiagnosed, Metadata: chartstream.Metadata{Actor: "import"},
		Payload: json.RawMessage(fmt.Sprintf(`{"condition_id":%q,"code":"44054006","system":"http://snomed.info/sct","onset":"not-a-date"}`, uuid.New()))}
	res, err := e.store.Append(ctx, e.tenant, patient.Stream(id), chartstream.AnyVersion, bad)
	if err != nil {
		t.Fatal(err)
	}
	e.observe(id, 1) // after the bad one
	p := e.start()
	e.publish(false)
	waitUntil(t, 15*time.Second, "the live projector sets the event aside and goes on", func() bool {
		return p.DeadLettered() == 1 && observationRows(t, e.tenant) == 2
	})
	stats, err := workers.Rebuild(ctx, workers.CopyDeps{DB: testkit.MustAppPool(t), History: e.store}, rebuildable, e.tenant, nil)
	if err != nil {
		t.Fatalf("a rebuild with an event that cannot be applied: %v", err)
	}
	if len(stats.SetAside) != 1 || stats.SetAside[0].Position != res.Positions[0] || stats.SetAside[0].Projection != "chart" {
		t.Fatalf("set aside %+v, want the condition for the chart", stats.SetAside)
	}
	if n := observationRows(t, e.tenant); n != 2 {
		t.Errorf("after the rebuild: %d observations, want 2", n)
	}
	if r := e.verify(); r.OK() || len(r.SetAside) != 1 || r.Differences != 0 {
		t.Errorf("verify after the rebuild: %+v, want only the event set aside", r)
	}
}
