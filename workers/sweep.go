package workers

import (
	"context"
	"log/slog"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/postgres"
)

// sweep compares, when the projector becomes active and every
// SweepInterval after, each tenant's oldest checkpoint with its newest event
// in the store, and has the schedule catch up any idle tenant that is
// behind. Messages are only the fast path: whatever they failed to announce
// (released while the tenant was stuck, lost with a stream, never
// delivered) the store still has, and the sweep finds it from the data, not
// from any record of what was delivered.
func (p *Projector) sweep(ctx context.Context, log *slog.Logger, sched *schedule) {
	if p.deps.Heads == nil {
		return
	}
	every(ctx, p.cfg.SweepInterval, func() {
		if n, err := p.sweepOnce(ctx, sched); err != nil && ctx.Err() == nil {
			log.Warn("projection sweep failed", logging.Error(err))
		} else if n > 0 {
			log.Info("projection sweep found tenants behind the event store; catching up", "tenants", n)
		}
	})
}

// sweepOnce queues a catch-up for each idle tenant behind its newest event
// and returns how many it queued.
func (p *Projector) sweepOnce(ctx context.Context, sched *schedule) (int, error) {
	heads, err := p.deps.Heads.TenantHeads(ctx)
	if err != nil {
		return 0, err
	}
	behind := 0
	for tenant, head := range heads {
		if len(p.cfg.Tenants) > 0 && !slices.Contains(p.cfg.Tenants, tenant) {
			continue
		}
		if !sched.idle(tenant.String()) {
			continue
		}
		at, err := p.oldestCheckpoint(ctx, tenant)
		if err != nil {
			return behind, err
		}
		if head.After(at) {
			sched.catchUp(tenant.String(), head)
			behind++
		}
	}
	return behind, nil
}

// oldestCheckpoint is the cursor every projection has reached for tenant in
// its live read models (the beginning for a projection that has none).
func (p *Projector) oldestCheckpoint(ctx context.Context, tenant chartstream.TenantID) (eventstore.Cursor, error) {
	cps := make(checkpoints, len(p.deps.Projections))
	names := make([]string, len(p.deps.Projections))
	for i, proj := range p.deps.Projections {
		cps[proj.Name()], names[i] = eventstore.Cursor{}, proj.Name()
	}
	err := postgres.InReadModelTx(ctx, p.deps.DB, tenant, postgres.LiveReadModels, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT projection, txid, position FROM projection_checkpoints
			WHERE tenant_id = $1 AND projection = ANY($2)`, tenant, names)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var c eventstore.Cursor
			if err := rows.Scan(&name, &c.TxID, &c.Position); err != nil {
				return err
			}
			cps[name] = c
		}
		return rows.Err()
	})
	return cps.oldest(), err
}
