package eventstore_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/eventstore/eventstoretest"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
)

// rawInsertSQL writes an event as a second writer would, bypassing Append;
// the chain trigger fills in the hashes.
const rawInsertSQL = `INSERT INTO events (tenant_id, stream_type, stream_id, version, event_id, event_type, schema_version, payload, metadata)
	VALUES ($1, $2, $3, $4, $5, 'test.happened', 1, '{}', '{}')`

// insertRaw inserts one event at version in tx and returns its id.
func insertRaw(t *testing.T, ctx context.Context, tx pgx.Tx, tenant chartstream.TenantID, st chartstream.StreamRef, version int64) (uuid.UUID, error) {
	t.Helper()
	id := uuid.New()
	_, err := tx.Exec(ctx, rawInsertSQL, tenant, st.Type, st.ID, version, id)
	return id, err
}

// tableOrder returns the tenant's event ids in the order ReadAll promises.
func tableOrder(t *testing.T, ctx context.Context, tenant chartstream.TenantID) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	err := postgres.InTenantTx(ctx, testkit.MustAppPool(t), tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT event_id FROM events WHERE tenant_id = $1 ORDER BY txid, position`, tenant)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestReadAllGapFree tails ReadAll while writers commit out of position
// order — half of them hold their transaction open for a random time after
// inserting — and checks that the reader saw every event exactly once, in
// the table's (txid, position) order.
func TestReadAllGapFree(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	s := MustStore(t, eventstore.Config{})
	pool := testkit.MustAppPool(t)
	tenant := testkit.MustTenant(t)
	const writers = 12
	stop := time.Now().Add(3 * time.Second)

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			st := stream()
			for v := int64(1); time.Now().Before(stop); v++ {
				var err error
				if w%2 == 0 {
					_, err = s.Append(ctx, tenant, st, v-1, newEvent("test.happened", map[string]any{"w": w}))
				} else {
					err = postgres.InTenantTx(ctx, pool, tenant, func(tx pgx.Tx) error {
						if _, err := insertRaw(t, ctx, tx, tenant, st, v); err != nil {
							return err
						}
						time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
						return nil
					})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	writing := make(chan struct{})
	go func() { wg.Wait(); close(writing) }()

	// The reader tails with a small page until the writers are done and it
	// has read as many events as the table holds.
	var got []chartstream.Event
	var cursor eventstore.Cursor
	var want []uuid.UUID
	deadline := time.Now().Add(25 * time.Second)
	for want == nil || len(got) < len(want) {
		page, next, err := s.ReadAll(ctx, eventstore.Filter{Tenant: tenant}, cursor, 7)
		if err != nil {
			t.Fatal(err)
		}
		got, cursor = append(got, page...), next
		select {
		case <-writing:
			if want == nil {
				want = tableOrder(t, ctx, tenant)
				deadline = time.Now().Add(10 * time.Second) // to catch up
			}
		default:
		}
		if len(page) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the reader has %d of %d events at the deadline", len(got), len(want))
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	close(errs)
	for err := range errs {
		t.Fatalf("writer: %v", err)
	}
	// One more read: nothing beyond what the table holds.
	if extra, _, err := s.ReadAll(ctx, eventstore.Filter{Tenant: tenant}, cursor, 7); err != nil || len(extra) != 0 {
		t.Fatalf("after catching up: %d more events, %v", len(extra), err)
	}

	ids := make([]uuid.UUID, len(got))
	versions := make(map[uuid.UUID]int64)
	for i, e := range got {
		ids[i] = e.ID
		if e.Version != versions[e.Stream.ID]+1 {
			t.Errorf("stream %s: version %d arrived after %d", e.Stream.ID, e.Version, versions[e.Stream.ID])
		}
		versions[e.Stream.ID] = e.Version
	}
	if !slices.Equal(ids, want) {
		missing, repeated := diffIDs(ids, want)
		t.Fatalf("the reader's %d events are not the table's %d: %d missing, %d repeated", len(ids), len(want), missing, repeated)
	}
	t.Logf("%d events from %d writers, all read in order", len(want), writers)
	if len(want) < 100 {
		t.Errorf("only %d events were written; the test proves little", len(want))
	}
}

// diffIDs counts wanted ids missing from got, and ids got more than once.
func diffIDs(got, want []uuid.UUID) (missing, repeated int) {
	seen := make(map[uuid.UUID]int)
	for _, id := range got {
		seen[id]++
		if seen[id] == 2 {
			repeated++
		}
	}
	for _, id := range want {
		if seen[id] == 0 {
			missing++
		}
	}
	return missing, repeated
}

// TestReadAllHorizon holds a transaction that inserted an event open while
// a later append commits: ReadAll must not return the later event until the
// earlier one commits, since a reader that did would skip the earlier one.
func TestReadAllHorizon(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	s := MustStore(t, eventstore.Config{})
	tenant := testkit.MustTenant(t)
	filter := eventstore.Filter{Tenant: tenant}

	held := make(chan uuid.UUID)
	release := make(chan struct{})
	committed := make(chan error, 1)
	go func() {
		committed <- postgres.InTenantTx(ctx, testkit.MustAppPool(t), tenant, func(tx pgx.Tx) error {
			id, err := insertRaw(t, ctx, tx, tenant, stream(), 1)
			if err != nil {
				close(held)
				return err
			}
			held <- id
			<-release
			return nil
		})
	}()
	first, ok := <-held
	if !ok {
		t.Fatal(<-committed)
	}
	later, laterID := newEvent("test.happened", map[string]any{}), uuid.New()
	later.ID = laterID
	if _, err := s.Append(ctx, tenant, stream(), chartstream.NoStream, later); err != nil {
		close(release)
		t.Fatal(err)
	}
	events, _, err := s.ReadAll(ctx, filter, eventstore.Cursor{}, 10)
	lag, lagErr := s.Horizon(ctx, filter)
	close(release)
	if err != nil || lagErr != nil {
		t.Fatal(err, lagErr)
	}
	if len(events) != 0 {
		t.Errorf("ReadAll returned %d events while an older transaction was open", len(events))
	}
	if lag.Events < 1 || lag.Age < 0 {
		t.Errorf("Horizon = %+v while an older transaction was open, want at least 1 event", lag)
	}
	if err := <-committed; err != nil {
		t.Fatal(err)
	}

	events = eventstoretest.ReadAllTenant(t, ctx, s, tenant, 2, 10)
	if events[0].ID != first || events[1].ID != laterID {
		t.Errorf("ReadAll returned %s, %s; want the held transaction's %s first", events[0].ID, events[1].ID, first)
	}
}
