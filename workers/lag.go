package workers

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/postgres"
)

// ProjectionLag is how far one projection of one tenant is behind the
// event store, for metrics.
type ProjectionLag struct {
	Tenant     chartstream.TenantID
	Projection string
	// Events are the tenant's events the projection has not applied yet
	// (counted up to 100,000); Seconds is the age of the oldest of them.
	Events  int64
	Seconds float64
	// SetAside are the events set aside for the projection (it could not
	// apply them) that no rebuild has applied since.
	SetAside int64
}

// errNoHeads is Lag's error for a projector without a HeadSource.
var errNoHeads = errors.New("projection lag: the projector has no head source (ProjectorDeps.Heads)")

// Lag measures every projection's lag for every tenant with events (the
// projector's Tenants, when it is limited to some), from the data: each
// tenant's newest event (one query across tenants, Heads) against its
// checkpoints (one short transaction per tenant, as the app role). Events
// are counted only for projections behind. Any projector process may call
// it, active or standby.
func (p *Projector) Lag(ctx context.Context) ([]ProjectionLag, error) {
	if p.deps.Heads == nil {
		return nil, errNoHeads
	}
	heads, err := p.deps.Heads.TenantHeads(ctx)
	if err != nil {
		return nil, err
	}
	var out []ProjectionLag
	for tenant, head := range heads {
		if len(p.cfg.Tenants) > 0 && !slices.Contains(p.cfg.Tenants, tenant) {
			continue
		}
		lags, err := p.tenantLag(ctx, tenant, head)
		if err != nil {
			return nil, fmt.Errorf("projection lag: %w", err)
		}
		out = append(out, lags...)
	}
	return out, nil
}

// tenantLag measures one tenant's projections against its newest event.
func (p *Projector) tenantLag(ctx context.Context, tenant chartstream.TenantID, head eventstore.Cursor) ([]ProjectionLag, error) {
	var out []ProjectionLag
	err := postgres.InReadModelTx(ctx, p.deps.DB, tenant, postgres.LiveReadModels, func(tx pgx.Tx) error {
		out = out[:0]
		cps, err := readCheckpoints(ctx, tx, tenant, p.deps.Projections)
		if err != nil {
			return err
		}
		setAside, err := countSetAside(ctx, tx, tenant)
		if err != nil {
			return err
		}
		for _, proj := range p.deps.Projections {
			l := ProjectionLag{Tenant: tenant, Projection: proj.Name(), SetAside: setAside[proj.Name()]}
			if c := cps[proj.Name()]; head.After(c) {
				if l.Events, l.Seconds, err = pendingAfter(ctx, tx, tenant, c); err != nil {
					return err
				}
			}
			out = append(out, l)
		}
		return nil
	})
	return out, err
}

// countSetAside counts the tenant's set-aside events per projection.
func countSetAside(ctx context.Context, tx pgx.Tx, tenant chartstream.TenantID) (map[string]int64, error) {
	rows, err := tx.Query(ctx, `SELECT projection, count(*) FROM projection_dead_letters WHERE tenant_id = $1 GROUP BY projection`, tenant)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64)
	var name string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error {
		out[name] = n
		return nil
	})
	return out, err
}

// pendingAfter counts the tenant's events after c (up to lagCountCap) and
// the age of the oldest of them.
func pendingAfter(ctx context.Context, tx pgx.Tx, tenant chartstream.TenantID, c eventstore.Cursor) (events int64, seconds float64, err error) {
	err = tx.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(recorded_at)), 0)::float8
		FROM (SELECT recorded_at FROM events WHERE tenant_id = $1 AND (txid, position) > ($2::text::xid8, $3)
		      ORDER BY txid, position LIMIT $4) AS pending`,
		tenant, fmt.Sprint(c.TxID), c.Position, lagCountCap).Scan(&events, &seconds)
	return events, seconds, err
}
