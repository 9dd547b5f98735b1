package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/postgres"
)

// Snapshot is an aggregate's state at a version (chartstream.Snapshot).
type Snapshot = chartstream.Snapshot

// SaveSnapshot stores snap for the stream unless a newer one is stored.
func (s *Store) SaveSnapshot(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, snap Snapshot) error {
	c, err := s.dataKey(ctx, tenant, stream.ID, true)
	if errors.Is(err, phi.ErrKeyDestroyed) {
		return nil // nothing of a shredded subject is worth keeping
	}
	if err != nil {
		return err
	}
	sealed := c.Seal(snap.State, phi.EventAAD(tenant, stream.ID))
	err = postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO snapshots (tenant_id, stream_id, version, schema_version, state) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (tenant_id, stream_id) DO UPDATE SET version = excluded.version,
				schema_version = excluded.schema_version, state = excluded.state, taken_at = now()
			WHERE snapshots.version < excluded.version`, tenant, stream.ID, snap.Version, snap.SchemaVersion, sealed)
		return err
	})
	if err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	return nil
}

// LoadSnapshot returns the stream's latest snapshot, or ok=false when there
// is none (or its key was destroyed): the caller replays from version 1.
func (s *Store) LoadSnapshot(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef) (snap Snapshot, ok bool, err error) {
	var sealed []byte
	err = postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT version, schema_version, state FROM snapshots WHERE tenant_id = $1 AND stream_id = $2`,
			tenant, stream.ID).Scan(&snap.Version, &snap.SchemaVersion, &sealed)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Snapshot{}, false, nil
	}
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("load snapshot: %w", err)
	}
	c, err := s.dataKey(ctx, tenant, stream.ID, false)
	if errors.Is(err, phi.ErrKeyDestroyed) {
		return Snapshot{}, false, nil
	}
	if err != nil {
		return Snapshot{}, false, err
	}
	if snap.State, err = c.Open(sealed, phi.EventAAD(tenant, stream.ID)); err != nil {
		return Snapshot{}, false, fmt.Errorf("open snapshot: %w", err)
	}
	return snap, true, nil
}
