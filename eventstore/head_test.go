package eventstore_test

import (
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"

	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
)

// An append's stream check reads the stream's head at the cost of one
// index entry, however long the stream, even with the generic plan
// PL/pgSQL keeps after a few calls: under row-level security the generic
// plan of max(version) read every entry of the stream, so appends to a
// patient with 100,000 events took 30 ms instead of 5.
func TestStreamCheckReadsOneEntryWhateverTheStreamsLength(t *testing.T) {
	t.Parallel()
	pool := testkit.MustPool(t, "DATABASE_URL")
	s := MustStore(t, eventstore.Config{})
	tenant := testkit.MustTenant(t)
	st, _ := mustAppendIDs(t, s, tenant, 100)
	ctx := testkit.Context(t)
	for range 29 {
		batch := make([]chartstream.NewEvent, 100)
		for i := range batch {
			batch[i] = newEvent("test.happened", map[string]any{"n": i})
		}
		if _, err := s.Append(ctx, tenant, st, chartstream.AnyVersion, batch...); err != nil {
			t.Fatal(err)
		}
	}
	err := postgres.InTenantTx(ctx, pool, tenant, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL plan_cache_mode = force_generic_plan`); err != nil {
			return err
		}
		var plan []struct {
			Plan struct {
				SharedHit  int64 `json:"Shared Hit Blocks"`
				SharedRead int64 `json:"Shared Read Blocks"`
			}
		}
		// The second call is measured: the first also reads the catalogs
		// (a fresh connection's caches are empty) and plans.
		var raw []byte
		for range 2 {
			if err := tx.QueryRow(ctx, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
				SELECT chartstream_check_stream($1, $2, -1, 3000, '{test.erased}')`, tenant, st.ID).Scan(&raw); err != nil {
				return err
			}
		}
		if err := json.Unmarshal(raw, &plan); err != nil {
			return err
		}
		blocks := plan[0].Plan.SharedHit + plan[0].Plan.SharedRead
		t.Logf("checking a stream of 3,000 events touched %d blocks", blocks)
		if blocks > 40 {
			t.Errorf("checking a stream of 3,000 events touched %d blocks, want a handful", blocks)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
