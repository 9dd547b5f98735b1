package workers

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
)

// ApplyEvents applies events of the transaction's tenant to each projection
// whose checkpoint is behind them, and advances the checkpoints. The
// rebuild uses it too, in the tenant's standby copy of the read models.
//
// The projections' writes are pipelined (see pipelinedTx): replaying a
// history statement by statement costs a round trip each.
func ApplyEvents(ctx context.Context, tx pgx.Tx, projections []Projection, events []chartstream.Event) error {
	cps, err := lockCheckpoints(ctx, tx, events[0].Tenant, projections)
	if err != nil {
		return err
	}
	return applyAfter(ctx, tx, projections, cps, events)
}

// checkpoints are where each projection is in one tenant's events, by
// projection name.
type checkpoints map[string]eventstore.Cursor

// oldest is the cursor every projection has reached.
func (c checkpoints) oldest() eventstore.Cursor {
	first := true
	var min eventstore.Cursor
	for _, cp := range c {
		if first || min.After(cp) {
			min, first = cp, false
		}
	}
	return min
}

// lockCheckpoints reads and locks the tenant's checkpoints of projections
// in the transaction's copy of the read models, creating missing ones at
// the beginning, in one round trip.
func lockCheckpoints(ctx context.Context, tx pgx.Tx, tenant chartstream.TenantID, projections []Projection) (checkpoints, error) {
	names := make([]string, len(projections))
	cps := make(checkpoints, len(projections))
	for i, p := range projections {
		names[i] = p.Name()
		cps[p.Name()] = eventstore.Cursor{}
	}
	// Rows the INSERT adds are not visible to the SELECT of the same
	// statement; they stay at the zero cursor set above.
	rows, err := tx.Query(ctx, `WITH created AS (
			INSERT INTO projection_checkpoints (tenant_id, projection, txid, position)
			SELECT $1, p, 0, 0 FROM unnest($2::text[]) AS p ON CONFLICT DO NOTHING)
		SELECT projection, txid, position FROM projection_checkpoints
		WHERE tenant_id = $1 AND projection = ANY($2) FOR UPDATE`, tenant, names)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var c eventstore.Cursor
		if err := rows.Scan(&name, &c.TxID, &c.Position); err != nil {
			return nil, err
		}
		cps[name] = c
	}
	return cps, rows.Err()
}

// applyAfter applies to each projection the events after its checkpoint,
// in order, and moves the checkpoints (cps too) to the last event.
func applyAfter(ctx context.Context, tx pgx.Tx, projections []Projection, cps checkpoints, events []chartstream.Event) error {
	return applyUpTo(ctx, tx, projections, cps, nil, events)
}

// applyUpTo is applyAfter, applying to each projection only the events up
// to its cursor in upTo when upTo is not nil.
func applyUpTo(ctx context.Context, tx pgx.Tx, projections []Projection, cps, upTo checkpoints, events []chartstream.Event) error {
	if len(events) == 0 {
		return nil
	}
	tenant := events[0].Tenant
	ptx := &pipelinedTx{Tx: tx, batch: &pgx.Batch{}}
	for _, proj := range projections {
		cp := cps[proj.Name()]
		last := cp
		pending := make([]chartstream.Event, 0, len(events))
		for _, e := range events {
			c := eventstore.CursorOf(e)
			if upTo != nil && c.After(upTo[proj.Name()]) {
				break
			}
			if c.After(last) { // else applied before: a redelivery
				pending = append(pending, e)
				last = c
			}
		}
		if err := applyTo(ctx, ptx, proj, pending); err != nil {
			return fmt.Errorf("projection %s: %w", proj.Name(), err)
		}
		if last != cp {
			ptx.batch.Queue(`UPDATE projection_checkpoints SET txid = $3, position = $4, updated_at = now()
				WHERE tenant_id = $1 AND projection = $2`, tenant, proj.Name(), last.TxID, last.Position)
			cps[proj.Name()] = last
		}
		// Flushed per projection, so an error names the projection.
		if err := ptx.flush(ctx); err != nil {
			return fmt.Errorf("projection %s: %w", proj.Name(), err)
		}
	}
	return nil
}

// BatchProjection is a Projection that applies many events of one tenant
// at once, in their order, with set-based SQL where events commute; the
// projector and the rebuild prefer it.
type BatchProjection interface {
	ApplyBatch(ctx context.Context, tx pgx.Tx, events []chartstream.Event) error
}

func applyTo(ctx context.Context, tx pgx.Tx, proj Projection, events []chartstream.Event) error {
	if len(events) == 0 {
		return nil
	}
	if b, ok := proj.(BatchProjection); ok {
		return b.ApplyBatch(ctx, tx, events)
	}
	for _, e := range events {
		if err := proj.Apply(ctx, tx, e); err != nil {
			return fmt.Errorf("event %s: %w", e.ID, err)
		}
	}
	return nil
}

// pipelinedTx queues the projections' Exec calls and sends them as one
// pipeline when flushed: projections write without reading what their
// writes return (Projection's contract), so the statements run in the same
// order and transaction, in one round trip. A read flushes first.
type pipelinedTx struct {
	pgx.Tx
	batch *pgx.Batch
}

// Exec queues the statement; its error surfaces at flush.
func (p *pipelinedTx) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	p.batch.Queue(sql, args...)
	return pgconn.CommandTag{}, nil
}

// Query flushes the queued writes, then queries.
func (p *pipelinedTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := p.flush(ctx); err != nil {
		return nil, err
	}
	return p.Tx.Query(ctx, sql, args...)
}

// QueryRow flushes the queued writes, then queries.
func (p *pipelinedTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := p.flush(ctx); err != nil {
		return errRow{err}
	}
	return p.Tx.QueryRow(ctx, sql, args...)
}

func (p *pipelinedTx) flush(ctx context.Context) error {
	if p.batch.Len() == 0 {
		return nil
	}
	b := p.batch
	p.batch = &pgx.Batch{}
	return p.Tx.SendBatch(ctx, b).Close()
}

// errRow is a Row whose Scan fails with err.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
