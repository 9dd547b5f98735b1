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
// rebuild uses it too, in schema rebuild.
//
// The projections' writes are pipelined (see pipelinedTx): replaying a
// history statement by statement costs a round trip each.
func ApplyEvents(ctx context.Context, tx pgx.Tx, projections []Projection, events []chartstream.Event) error {
	tenant := events[0].Tenant
	ptx := &pipelinedTx{Tx: tx, batch: &pgx.Batch{}}
	for _, proj := range projections {
		if _, err := tx.Exec(ctx, `INSERT INTO projection_checkpoints (tenant_id, projection, txid, position)
			VALUES ($1, $2, 0, 0) ON CONFLICT DO NOTHING`, tenant, proj.Name()); err != nil {
			return err
		}
		var cp eventstore.Cursor
		if err := tx.QueryRow(ctx, `SELECT txid, position FROM projection_checkpoints
			WHERE tenant_id = $1 AND projection = $2 FOR UPDATE`, tenant, proj.Name()).Scan(&cp.TxID, &cp.Position); err != nil {
			return err
		}
		last := cp
		pending := make([]chartstream.Event, 0, len(events))
		for _, e := range events {
			if c := eventstore.CursorOf(e); c.After(last) { // else applied before: a redelivery
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
		}
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
