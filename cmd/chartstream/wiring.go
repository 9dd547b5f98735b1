package main

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/projections/census"
	"github.com/chartstream/chartstream/projections/chart"
	"github.com/chartstream/chartstream/projections/observations"
	"github.com/chartstream/chartstream/projections/orders"
	"github.com/chartstream/chartstream/workers"
)

// openStore connects to url and returns the event store on it for the
// given event types, with the configured PHI key provider.
func openStore(ctx context.Context, url string, keys phiKeys, appName string, specs []chartstream.EventSpec) (*eventstore.Store, *pgxpool.Pool, error) {
	provider, err := keys.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	pool, err := postgres.Connect(ctx, postgres.Config{URL: url, ApplicationName: appName})
	if err != nil {
		return nil, nil, err
	}
	store, err := newStore(pool, provider, specs, eventstore.Config{})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return store, pool, nil
}

// newStore returns the event store on pool for the given event types, with
// the PHI key provider keys.
func newStore(pool *pgxpool.Pool, keys phi.KeyProvider, specs []chartstream.EventSpec, cfg eventstore.Config) (*eventstore.Store, error) {
	reg, err := eventstore.NewRegistry(specs)
	if err != nil {
		return nil, err
	}
	return eventstore.New(pool, reg, keys, cfg)
}

// readModels are the projections the workers keep up to date, in the
// order they are applied.
func readModels() []workers.RebuildProjection {
	return []workers.RebuildProjection{chart.Projector{}, observations.Projector{}, census.Projector{}, orders.Projector{}}
}

// liveProjections are the read models as the projector runs them.
func liveProjections() []workers.Projection {
	var out []workers.Projection
	for _, p := range readModels() {
		out = append(out, p)
	}
	return out
}
