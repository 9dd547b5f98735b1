package eventstore_test

import (
	"testing"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/eventstore/eventstoretest"
)

// TestContract runs the contract suite against the store as the API and
// workers use it: on the app role's pool, RLS-bound. It is not parallel,
// so the suite's Subscribe test runs while no other test of this package
// holds the read horizon back.
func TestContract(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T, cfg eventstore.Config, specs []chartstream.EventSpec, upcasters ...eventstore.Upcaster) *eventstore.Store {
		return mustStoreOn(t, "DATABASE_URL", cfg, specs, upcasters...)
	})
}
