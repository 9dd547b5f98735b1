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

// RebuildProgressFn is told how many events were replayed so far.
type RebuildProgressFn func(events int64)

// RebuildStats describes one tenant's rebuild.
type RebuildStats struct {
	Events   int64
	Duration time.Duration
	// SetAside are the events some projection could not apply; the new
	// read models lack them (see projection_dead_letters).
	SetAside []SetAside
}

// Rebuild replays tenant's whole history from the event store into the
// standby copy of its read models, then makes that the live copy: reads
// keep working on the live copy throughout and see the rebuilt one at once
// when the copies switch. Every projection given is replayed, and the
// copies switch as a whole, so give them all.
//
// The replay runs in short transactions while the live projector goes on.
// Only for the last stretch is the tenant's live projection paused: the
// standby catches up with what committed meanwhile and the copies switch in
// one tiny transaction. Events a projection cannot apply are set aside and
// reported, not fatal. Errors: ErrStandbyBusy when another rebuild or
// verification of the tenant runs.
func Rebuild(ctx context.Context, deps CopyDeps, projections []RebuildProjection, tenant chartstream.TenantID, progress RebuildProgressFn) (RebuildStats, error) {
	start := time.Now()
	var stats RebuildStats
	hold, err := holdStandby(ctx, deps.sessions(), tenant)
	if err != nil {
		return stats, fmt.Errorf("rebuild: %w", err)
	}
	defer hold.release()
	// A failed earlier run may have left rows in the standby copy.
	if err := clearCopy(ctx, deps.DB, tenant, postgres.StandbyReadModels, projections); err != nil {
		return stats, fmt.Errorf("rebuild: %w", err)
	}
	projs := projectionsOf(projections)
	var r replayed
	if err := replayStandby(ctx, deps, projs, tenant, nil, progress, &r); err != nil {
		return stats, fmt.Errorf("rebuild: replay: %w", err)
	}
	if err := hold.pause(ctx); err != nil {
		return stats, fmt.Errorf("rebuild: %w", err)
	}
	if deps.whilePaused != nil {
		deps.whilePaused()
	}
	if err := replayStandby(ctx, deps, projs, tenant, nil, progress, &r); err != nil {
		return stats, fmt.Errorf("rebuild: replay: %w", err)
	}
	if err := hold.alive(ctx); err != nil {
		return stats, fmt.Errorf("rebuild: %w", err)
	}
	err = postgres.InTenantTx(ctx, deps.DB, tenant, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO read_model_copies AS c (tenant_id, live) VALUES ($1, 'rebuild')
			ON CONFLICT (tenant_id) DO UPDATE SET live = CASE c.live WHEN 'public' THEN 'rebuild' ELSE 'public' END, switched_at = now()`, tenant)
		return err
	})
	if err != nil {
		return stats, fmt.Errorf("rebuild: switch copies: %w", err)
	}
	hold.resume(ctx)
	stats.Events, stats.Duration = r.events, time.Since(start)
	err = postgres.InReadModelTx(ctx, deps.DB, tenant, postgres.LiveReadModels, func(tx pgx.Tx) (err error) {
		stats.SetAside, err = deadLetters(ctx, tx, tenant)
		return err
	})
	if err != nil {
		return stats, fmt.Errorf("rebuild: %w", err)
	}
	// The old copy is the standby now; it is cleared so it takes no room
	// (the next rebuild or verification would clear it anyway).
	if err := clearCopy(ctx, deps.DB, tenant, postgres.StandbyReadModels, projections); err != nil {
		return stats, fmt.Errorf("rebuild: %w", err)
	}
	return stats, nil
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
	err := postgres.InReadModelTx(ctx, db, tenant, postgres.LiveReadModels, func(tx pgx.Tx) error {
		for _, name := range projections {
			s := ProjectionStatus{Tenant: tenant, Projection: name}
			var c eventstore.Cursor
			err := tx.QueryRow(ctx, `SELECT txid, position, updated_at FROM projection_checkpoints WHERE tenant_id = $1 AND projection = $2`,
				tenant, name).Scan(&c.TxID, &c.Position, &s.UpdatedAt)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			s.Position = c.Position
			if s.LagEvents, s.LagSeconds, err = pendingAfter(ctx, tx, tenant, c); err != nil {
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
