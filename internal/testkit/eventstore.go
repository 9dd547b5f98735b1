package testkit

import (
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/phi"
)

// MustPHIKeys returns a local PHI key provider with a master key of the
// test's own.
func MustPHIKeys(tb testing.TB) phi.KeyProvider {
	tb.Helper()
	keyFile := filepath.Join(tb.TempDir(), "phi.key")
	if _, err := phi.CreateLocalKeyFile(keyFile); err != nil {
		tb.Fatal(err)
	}
	keys, err := phi.OpenLocalKeyFile(keyFile)
	if err != nil {
		tb.Fatal(err)
	}
	return keys
}

// MustEventStore returns the event store on pool for the given event
// types, sealing PHI with keys.
func MustEventStore(tb testing.TB, pool *pgxpool.Pool, specs []chartstream.EventSpec, keys phi.KeyProvider) *eventstore.Store {
	tb.Helper()
	reg, err := eventstore.NewRegistry(specs)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := eventstore.New(pool, reg, keys, eventstore.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
