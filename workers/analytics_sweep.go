package workers

import (
	"context"
	"errors"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/postgres"
)

// setAside sets the event that failed aside, if it is still the tenant's
// next: a row in analytics_dead_letters, and the checkpoint moved past it,
// in one transaction. The event is logged by id, never its content.
func (a *AnalyticsProjector) setAside(ctx context.Context, f *eventFailure) error {
	tenant := f.event.Tenant
	done := false
	err := postgres.InTenantTx(ctx, a.deps.DB, tenant, func(tx pgx.Tx) error {
		done = false
		cp, err := lockAnalyticsCheckpoint(ctx, tx, tenant)
		if err != nil {
			return err
		}
		next, _, err := a.deps.Events.ReadAll(ctx, eventstore.Filter{Tenant: tenant}, cp, 1)
		if err != nil || len(next) == 0 || next[0].ID != f.event.ID {
			return err // another step went past it meanwhile
		}
		if _, err := tx.Exec(ctx, `INSERT INTO analytics_dead_letters (tenant_id, event_id, event_type, position, reason)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, tenant, f.event.ID, f.event.Type, f.event.Position, reason(f.err)); err != nil {
			return err
		}
		at := eventstore.CursorOf(f.event)
		_, err = tx.Exec(ctx, `UPDATE analytics_checkpoints SET txid = $2, position = $3, updated_at = now() WHERE tenant_id = $1`,
			tenant, at.TxID, at.Position)
		done = err == nil
		return err
	})
	if err != nil || !done {
		return err
	}
	a.setAsides.Add(1)
	a.log.Error("event set aside", "event_id", f.event.ID.String(), "tenant", tenant.String(), "event_type", f.event.Type,
		"projections", "analytics", "reason", reason(f.err))
	return nil
}

// sweep compares, when the projector becomes active and every
// SweepInterval after, each tenant's analytics checkpoint with its newest
// event in the store, and catches up any tenant behind: messages are only
// the fast path. An event that fails for good there is set aside; other
// failures wait for the next sweep or message.
func (a *AnalyticsProjector) sweep(ctx context.Context) {
	if a.deps.Heads == nil {
		return
	}
	every(ctx, a.cfg.SweepInterval, func() {
		if n, err := a.sweepOnce(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("analytics sweep failed", logging.Error(err))
		} else if n > 0 {
			a.log.Info("analytics sweep caught up tenants behind the event store", "tenants", n)
		}
	})
}

// sweepOnce catches up every tenant behind its newest event and returns
// how many were.
func (a *AnalyticsProjector) sweepOnce(ctx context.Context) (int, error) {
	heads, err := a.deps.Heads.TenantHeads(ctx)
	if err != nil {
		return 0, err
	}
	behind := 0
	for tenant, head := range heads {
		if len(a.cfg.Tenants) > 0 && !slices.Contains(a.cfg.Tenants, tenant) || !head.After(a.knownCheckpoint(tenant)) {
			continue
		}
		cp, err := a.checkpoint(ctx, tenant)
		if err != nil {
			return behind, err
		}
		if !head.After(cp) {
			continue
		}
		behind++
		for range maxSetAsidePerMessage {
			err = a.catchUp(ctx, analyticsTarget{tenant: tenant, cursor: head})
			var f *eventFailure
			if !errors.As(err, &f) || !permanent(err) {
				break
			}
			if err = a.setAside(ctx, f); err != nil {
				break
			}
		}
		if err != nil {
			return behind, err
		}
	}
	return behind, nil
}

// checkpoint reads the tenant's analytics checkpoint, the beginning when
// it has none, and remembers it.
func (a *AnalyticsProjector) checkpoint(ctx context.Context, tenant chartstream.TenantID) (eventstore.Cursor, error) {
	var c eventstore.Cursor
	err := postgres.InTenantTx(ctx, a.deps.DB, tenant, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT txid, position FROM analytics_checkpoints WHERE tenant_id = $1`, tenant).Scan(&c.TxID, &c.Position)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	if err == nil {
		a.committed(tenant, analyticsStep{reached: c}, nil)
	}
	return c, err
}
