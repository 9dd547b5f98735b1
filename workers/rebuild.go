package workers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/postgres"
)

// RebuildProjection is a projection that can be rebuilt: it names the
// tables it writes (projections/*.Projector).
type RebuildProjection interface {
	Projection
	Tables() []string
}

// EventHistory is what a rebuild reads: the event store, not JetStream,
// whose retention is limited.
type EventHistory interface {
	ReadAll(ctx context.Context, filter eventstore.Filter, after eventstore.Cursor, limit int) ([]chartstream.Event, eventstore.Cursor, error)
	Open(ctx context.Context, e *chartstream.Event) error
}

// rebuildPage is how many events a rebuild replays per transaction: large
// enough that per-transaction costs vanish, small enough that no
// transaction holds the horizon back for long.
const rebuildPage = 5000

// RebuildProgressFn is told how many events were replayed so far.
type RebuildProgressFn func(events int64)

// RebuildStats describes one tenant's rebuild.
type RebuildStats struct {
	Events   int64
	Duration time.Duration
}

// Rebuild replays tenant's whole history from the event store into the
// rebuild twins of projections (schema rebuild), then swaps the result in:
// reads keep working on the live tables throughout and see the rebuilt
// rows at once when the swap commits.
//
// The swap locks the projections' checkpoints (so the live projector
// waits for this tenant only), replays whatever committed meanwhile, and
// replaces the tenant's live rows with the twins' in one transaction.
func Rebuild(ctx context.Context, db *pgxpool.Pool, history EventHistory, projections []RebuildProjection, tenant chartstream.TenantID, progress RebuildProgressFn) (RebuildStats, error) {
	start := time.Now()
	var stats RebuildStats
	applied := make([]Projection, len(projections))
	for i, p := range projections {
		applied[i] = p
	}
	// A failed earlier rebuild may have left rows and checkpoints behind.
	err := postgres.InTenantTx(ctx, db, tenant, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM rebuild.projection_checkpoints WHERE tenant_id = $1`, tenant); err != nil {
			return err
		}
		return forTwins(ctx, tx, projections, tenant, func(table string) string {
			return "DELETE FROM rebuild." + table + " WHERE tenant_id = $1"
		})
	})
	if err != nil {
		return stats, fmt.Errorf("rebuild: clear twins: %w", err)
	}
	// Replay in pages, one transaction each, into the twins.
	var cursor eventstore.Cursor
	replay := func(tx pgx.Tx, limit int) (int, error) {
		events, next, err := history.ReadAll(ctx, eventstore.Filter{Tenant: tenant}, cursor, limit)
		if err != nil || len(events) == 0 {
			return 0, err
		}
		for i := range events {
			if err := history.Open(ctx, &events[i]); err != nil {
				return 0, err
			}
		}
		if _, err := tx.Exec(ctx, `SET LOCAL search_path = rebuild, public`); err != nil {
			return 0, err
		}
		if err := ApplyEvents(ctx, tx, applied, events); err != nil {
			return 0, err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL search_path = public`); err != nil {
			return 0, err
		}
		cursor = next
		stats.Events += int64(len(events))
		if progress != nil {
			progress(stats.Events)
		}
		return len(events), nil
	}
	for {
		var n int
		err := postgres.InTenantTx(ctx, db, tenant, func(tx pgx.Tx) error {
			var err error
			n, err = replay(tx, rebuildPage)
			return err
		})
		if err != nil {
			return stats, fmt.Errorf("rebuild: replay: %w", err)
		}
		if n == 0 {
			break
		}
	}
	err = postgres.InTenantTx(ctx, db, tenant, func(tx pgx.Tx) error {
		return swap(ctx, tx, projections, tenant, &cursor, replay)
	})
	if err != nil {
		return stats, fmt.Errorf("rebuild: swap: %w", err)
	}
	stats.Duration = time.Since(start)
	return stats, nil
}

// swap replaces the tenant's live rows with the rebuilt ones. It locks the
// live checkpoints in the order the projector does (no deadlock), catches
// the twins up with what committed since the replay, and refuses to swap in
// a rebuild behind what the live projector already applied: those events
// were acknowledged and would not come back.
func swap(ctx context.Context, tx pgx.Tx, projections []RebuildProjection, tenant chartstream.TenantID, cursor *eventstore.Cursor, replay func(pgx.Tx, int) (int, error)) error {
	var live eventstore.Cursor
	for _, p := range projections {
		var c eventstore.Cursor
		err := tx.QueryRow(ctx, `SELECT txid, position FROM public.projection_checkpoints
			WHERE tenant_id = $1 AND projection = $2 FOR UPDATE`, tenant, p.Name()).Scan(&c.TxID, &c.Position)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if c.After(live) {
			live = c
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := replay(tx, rebuildPage)
		if err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		if !live.After(*cursor) {
			break
		}
		// The live projector is ahead of what ReadAll can see yet: an older
		// transaction still holds the horizon back. Wait for it.
		if time.Now().After(deadline) {
			return fmt.Errorf("the event store's horizon stayed behind the live projector for 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	err := forTwins(ctx, tx, projections, tenant, func(table string) string {
		return "DELETE FROM public." + table + " WHERE tenant_id = $1"
	}, func(table string) string {
		return "INSERT INTO public." + table + " SELECT * FROM rebuild." + table + " WHERE tenant_id = $1"
	}, func(table string) string {
		return "DELETE FROM rebuild." + table + " WHERE tenant_id = $1"
	})
	if err != nil {
		return err
	}
	for _, p := range projections {
		if _, err := tx.Exec(ctx, `INSERT INTO public.projection_checkpoints (tenant_id, projection, txid, position) VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant_id, projection) DO UPDATE SET txid = excluded.txid, position = excluded.position, updated_at = now()`,
			tenant, p.Name(), cursor.TxID, cursor.Position); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM rebuild.projection_checkpoints WHERE tenant_id = $1 AND projection = $2`, tenant, p.Name()); err != nil {
			return err
		}
	}
	return nil
}

// forTwins runs, for every table of every projection, each statement the
// functions build (table names come from code, never input).
func forTwins(ctx context.Context, tx pgx.Tx, projections []RebuildProjection, tenant chartstream.TenantID, stmts ...func(table string) string) error {
	for _, p := range projections {
		for _, table := range p.Tables() {
			for _, stmt := range stmts {
				if _, err := tx.Exec(ctx, stmt(table), tenant); err != nil {
					return fmt.Errorf("%s: %w", table, err)
				}
			}
		}
	}
	return nil
}

// ProjectionStatus is one projection's progress for one tenant.
type ProjectionStatus struct {
	Tenant     chartstream.TenantID `json:"tenant_id"`
	Projection string               `json:"projection"`
	Position   int64                `json:"position"`
	UpdatedAt  *time.Time           `json:"updated_at,omitempty"`
	// LagEvents are the tenant's events not yet applied (up to 100,000).
	LagEvents int64 `json:"lag_events"`
	// LagSeconds is the age of the oldest event not yet applied.
	LagSeconds float64 `json:"lag_seconds"`
}

// Status reports each projection's checkpoint and lag for tenant.
func Status(ctx context.Context, db *pgxpool.Pool, projections []string, tenant chartstream.TenantID) ([]ProjectionStatus, error) {
	var out []ProjectionStatus
	err := postgres.InTenantTx(ctx, db, tenant, func(tx pgx.Tx) error {
		for _, name := range projections {
			s := ProjectionStatus{Tenant: tenant, Projection: name}
			var c eventstore.Cursor
			err := tx.QueryRow(ctx, `SELECT txid, position, updated_at FROM projection_checkpoints WHERE tenant_id = $1 AND projection = $2`,
				tenant, name).Scan(&c.TxID, &c.Position, &s.UpdatedAt)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			s.Position = c.Position
			err = tx.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(recorded_at)), 0)::float8
				FROM (SELECT recorded_at FROM events WHERE tenant_id = $1 AND (txid, position) > ($2::text::xid8, $3)
				      ORDER BY txid, position LIMIT $4) AS pending`,
				tenant, fmt.Sprint(c.TxID), c.Position, lagCountCap).Scan(&s.LagEvents, &s.LagSeconds)
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("projection status: %w", err)
	}
	return out, nil
}
