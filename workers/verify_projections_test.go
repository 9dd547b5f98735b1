package workers_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/workers"
)

// projected runs the projector on the tenant's events until the read
// models hold them all.
func (e *projectorEnv) projected() {
	e.t.Helper()
	e.publish(false)
	e.start()
	ctx, pool := testkit.Context(e.t), testkit.MustAppPool(e.t)
	waitUntil(e.t, 15*time.Second, "the projector applies every event", func() bool {
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
}

// liveExec changes the tenant's live read models behind the projector's
// back, as a lost event or a bug would.
func (e *projectorEnv) liveExec(sql string, args ...any) {
	e.t.Helper()
	ctx := testkit.Context(e.t)
	err := postgres.InReadModelTx(ctx, testkit.MustAppPool(e.t), e.tenant, postgres.LiveReadModels, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, sql, append([]any{e.tenant}, args...)...)
		if err == nil && tag.RowsAffected() == 0 {
			e.t.Fatalf("%q changed nothing", sql)
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *projectorEnv) verify() workers.ProjectionReport {
	e.t.Helper()
	r, err := workers.VerifyProjections(testkit.Context(e.t), workers.CopyDeps{DB: testkit.MustAppPool(e.t), History: e.store}, rebuildable, e.tenant, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// Verification replays the store and compares row by row: read models the
// projector built pass; a row missing (an event lost behind a checkpoint
// that claims it), a row changed and a row that should not be there are
// each named by table and key.
func TestVerifyProjectionsFindsEveryDifference(t *testing.T) {
	t.Parallel()
	e := newProjectorEnv(t)
	id := e.clinic()
	e.observe(id, 3)
	e.projected()
	if r := e.verify(); !r.OK() || r.Rows == 0 || r.Events == 0 {
		t.Fatalf("exact read models: %+v", r)
	}

	var lost uuid.UUID
	ctx := testkit.Context(t)
	err := postgres.InReadModelTx(ctx, testkit.MustAppPool(t), e.tenant, postgres.LiveReadModels, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT observation_id FROM observations WHERE tenant_id = $1 LIMIT 1`, e.tenant).Scan(&lost)
	})
	if err != nil {
		t.Fatal(err)
	}
	e.liveExec(`DELETE FROM observations WHERE tenant_id = $1 AND observation_id = $2`, lost)
	e.liveExec(`UPDATE patient_charts SET sex = 'other' WHERE tenant_id = $1 AND patient_id = $2`, id)
	extra := uuid.New()
	e.liveExec(`INSERT INTO observations (tenant_id, observation_id, patient_id, code, system, effective_at, recorded_at)
		VALUES ($1, $2, $3, '8867-4', 'http://loinc.org', now(), now())`, extra, id)

	r := e.verify()
	if r.OK() || r.Differences != 3 {
		t.Fatalf("after three changes: %d differences, %+v", r.Differences, r.Examples)
	}
	want := map[string]string{"observations/" + lost.String(): "missing", "observations/" + extra.String(): "extra", "patient_charts/" + id.String(): "differs"}
	for _, d := range r.Examples {
		key := d.Key["observation_id"]
		if d.Table == "patient_charts" {
			key = d.Key["patient_id"]
		}
		if want[d.Table+"/"+key] != d.Kind {
			t.Errorf("unexpected difference %+v", d)
		}
		delete(want, d.Table+"/"+key)
	}
	if len(want) > 0 {
		t.Errorf("differences not named: %v", want)
	}
	// The standby copy is left empty, and a rebuild repairs the rest.
	if _, err := workers.Rebuild(ctx, workers.CopyDeps{DB: testkit.MustAppPool(t), History: e.store}, rebuildable, e.tenant, nil); err != nil {
		t.Fatal(err)
	}
	if r := e.verify(); !r.OK() {
		t.Errorf("after a rebuild: %+v", r)
	}
}
