package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
)

// EventHash is where an event is in commit order and its stored hash: what
// the anchor worker extends a tenant's Chain with.
type EventHash struct {
	Tenant chartstream.TenantID
	Cursor Cursor
	Hash   Hash
}

// EventHashes returns up to limit events' hashes after the cursor, across
// every tenant the pool's role may see (the relay role: all), in the
// gap-free order ReadAll reads in, and the cursor to continue from.
func (s *Store) EventHashes(ctx context.Context, after Cursor, limit int) ([]EventHash, Cursor, error) {
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('enable_sort', 'off', true)`) // see ReadAll
	b.Queue(`SELECT tenant_id, txid::text::bigint AS commit_txid, position, hash FROM events
		WHERE (txid, position) > ($1::text::xid8, $2) AND txid < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY events.txid, events.position LIMIT $3`, fmt.Sprint(after.TxID), after.Position, limit)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, after, fmt.Errorf("event hashes: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, after, fmt.Errorf("event hashes: %w", err)
	}
	out := make([]EventHash, 0, limit)
	var tenant pgtype.UUID
	var e EventHash
	_, err = pgx.ForEachRow(rows, []any{&tenant, &e.Cursor.TxID, &e.Cursor.Position, &e.Hash}, func() error {
		e.Tenant = tenant.Bytes
		out = append(out, e)
		e.Hash = nil
		return nil
	})
	if err != nil {
		return nil, after, fmt.Errorf("event hashes: %w", err)
	}
	if len(out) > 0 {
		after = out[len(out)-1].Cursor
	}
	return out, after, br.Close()
}

const checkpointColumns = `seq, events, last_txid, last_position, last_token, chain_hash, signed_at, signature`

func scanCheckpoint(row pgx.Row, tenant chartstream.TenantID) (Checkpoint, error) {
	c := Checkpoint{Tenant: tenant}
	err := row.Scan(&c.Seq, &c.Events, &c.Last.TxID, &c.Last.Position, &c.LastToken, &c.Hash, &c.SignedAt, &c.Signature)
	c.SignedAt = c.SignedAt.UTC()
	return c, err
}

// SaveCheckpoints adds signed checkpoints, each under its tenant, in one
// transaction. It writes none that would replace a row: it returns those
// whose tenant and sequence number were taken already, which the caller
// must not take for its own.
func (s *Store) SaveCheckpoints(ctx context.Context, cps []Checkpoint) (taken []Checkpoint, err error) {
	b := &pgx.Batch{}
	for _, c := range cps {
		b.Queue(`INSERT INTO audit_checkpoints (tenant_id, `+checkpointColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
			c.Tenant, c.Seq, c.Events, c.Last.TxID, c.Last.Position, c.LastToken, []byte(c.Hash), c.SignedAt, c.Signature)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("save checkpoints: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after commit
	br := tx.SendBatch(ctx, b)
	for _, c := range cps {
		tag, err := br.Exec()
		if err != nil {
			_ = br.Close()
			return nil, fmt.Errorf("save checkpoints: %w", err)
		}
		if tag.RowsAffected() == 0 {
			taken = append(taken, c)
		}
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("save checkpoints: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("save checkpoints: %w", err)
	}
	return taken, nil
}

// LatestCheckpoint returns the tenant's checkpoint of the highest
// sequence number in the table, nil when it has none. Nothing vouches for
// a row until its signature is verified.
func (s *Store) LatestCheckpoint(ctx context.Context, tenant chartstream.TenantID) (*Checkpoint, error) {
	var c Checkpoint
	err := postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		var err error
		c, err = scanCheckpoint(tx.QueryRow(ctx, `SELECT `+checkpointColumns+` FROM audit_checkpoints
			WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1`, tenant), tenant)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("latest checkpoint: %w", err)
	}
	return &c, nil
}

// CheckpointFn receives one checkpoint; an error stops the walk.
type CheckpointFn func(Checkpoint) error

// Checkpoints calls fn with every checkpoint of the tenant in the table,
// in sequence order, reading them as it goes.
func (s *Store) Checkpoints(ctx context.Context, tenant chartstream.TenantID, fn CheckpointFn) error {
	err := postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = 0`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+checkpointColumns+` FROM audit_checkpoints WHERE tenant_id = $1 ORDER BY seq`, tenant)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanCheckpoint(rows, tenant)
			if err != nil {
				return err
			}
			if err := fn(c); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("checkpoints: %w", err)
	}
	return nil
}
