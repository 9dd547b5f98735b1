package main

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/encounter"
	"github.com/chartstream/chartstream/commands/medicationorder"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/postgres"
)

// eventSpecs are every clinical event type the platform records.
func eventSpecs() []chartstream.EventSpec {
	var specs []chartstream.EventSpec
	specs = append(specs, patient.EventSpecs()...)
	specs = append(specs, encounter.EventSpecs()...)
	specs = append(specs, medicationorder.EventSpecs()...)
	return specs
}

// openStore connects to url and returns the event store on it for the
// given event types, with the PHI key provider from keyFile.
func openStore(ctx context.Context, url, keyFile, appName string, specs []chartstream.EventSpec) (*eventstore.Store, *pgxpool.Pool, error) {
	if keyFile == "" {
		return nil, nil, errors.New("PHI_KEY_FILE is required")
	}
	keys, err := phi.OpenLocalKeyFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	reg, err := eventstore.NewRegistry(specs)
	if err != nil {
		return nil, nil, err
	}
	pool, err := postgres.Connect(ctx, postgres.Config{URL: url, ApplicationName: appName})
	if err != nil {
		return nil, nil, err
	}
	store, err := eventstore.New(pool, reg, keys, eventstore.Config{})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return store, pool, nil
}
