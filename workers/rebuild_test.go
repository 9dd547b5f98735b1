package workers_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
	live := e.checksum("public")

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
	stats, err := workers.Rebuild(ctx, pool, e.store, rebuildable, e.tenant, nil)
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
	if rebuilt := e.checksum("public"); rebuilt != live {
		e.dump("public")
		t.Errorf("read models after the rebuild (%s) differ from the live ones (%s)", rebuilt, live)
	}
	var leftover int
	err = postgres.InTenantTx(ctx, pool, e.tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM rebuild.patient_charts WHERE tenant_id = $1)
			+ (SELECT count(*) FROM rebuild.projection_checkpoints WHERE tenant_id = $1)`, e.tenant).Scan(&leftover)
	})
	if err != nil {
		t.Fatal(err)
	}
	if leftover != 0 {
		t.Errorf("%d rows left in the rebuild twins", leftover)
	}
}
