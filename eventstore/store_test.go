package eventstore_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/eventstore/eventstoretest"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/testkit"
)

// MustStore returns a store on the app role's pool with the test binary's
// local key and the contract suite's event types.
func MustStore(tb testing.TB, cfg eventstore.Config, upcasters ...eventstore.Upcaster) *eventstore.Store {
	tb.Helper()
	return mustStoreOn(tb, "DATABASE_URL", cfg, eventstoretest.Specs(), upcasters...)
}

// mustStoreOn returns a store on the shared pool of the URL in envVar.
func mustStoreOn(tb testing.TB, envVar string, cfg eventstore.Config, specs []chartstream.EventSpec, upcasters ...eventstore.Upcaster) *eventstore.Store {
	tb.Helper()
	return mustStoreWith(tb, testkit.MustPool(tb, envVar), cfg, specs, upcasters...)
}

func mustStoreWith(tb testing.TB, pool *pgxpool.Pool, cfg eventstore.Config, specs []chartstream.EventSpec, upcasters ...eventstore.Upcaster) *eventstore.Store {
	tb.Helper()
	reg, err := eventstore.NewRegistry(specs, upcasters...)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := eventstore.New(pool, reg, mustKeys(tb), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// sharedKeys is one local master key for every store of a test binary, so
// stores created by different tests can open each other's PHI. It is made
// once (parallel tests ask at once) in a directory no test's cleanup removes.
var sharedKeys = sync.OnceValues(func() (*phi.LocalKeyProvider, error) {
	dir, err := os.MkdirTemp("", "chartstream-eventstore-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir) // the provider keeps the key in memory
	path := filepath.Join(dir, "phi.key")
	if _, err := phi.CreateLocalKeyFile(path); err != nil {
		return nil, err
	}
	return phi.OpenLocalKeyFile(path)
})

func mustKeys(tb testing.TB) *phi.LocalKeyProvider {
	tb.Helper()
	k, err := sharedKeys()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func newEvent(typ string, payload any) chartstream.NewEvent {
	return eventstoretest.NewEvent(typ, payload)
}

func stream() chartstream.StreamRef { return eventstoretest.Stream() }

func TestAppendAndReadStream(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	s := MustStore(t, eventstore.Config{})
	tenant, st := testkit.MustTenant(t), stream()

	res, err := s.Append(ctx, tenant, st, chartstream.NoStream,
		newEvent("test.happened", map[string]any{"n": 1}),
		newEvent("test.noted", map[string]any{"n": 2, "name": "Ada Lovelace", "note": "free text"}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 2 || len(res.Positions) != 2 || res.Positions[0] >= res.Positions[1] {
		t.Fatalf("append result %+v, want version 2 and two increasing positions", res)
	}
	events, err := s.ReadStream(ctx, tenant, st, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[1].Version != 2 || events[1].Sealed != nil {
		t.Fatalf("read %d events: %+v", len(events), events)
	}
	var got map[string]any
	if err := json.Unmarshal(events[1].Payload, &got); err != nil {
		t.Fatal(err)
	}
	if got["name"] != "Ada Lovelace" || got["note"] != "free text" || got["n"] != float64(2) {
		t.Errorf("payload after open = %v", got)
	}
	report, err := s.Verify(ctx, tenant, eventstore.VerifyParams{})
	if err != nil || len(report.Broken) != 0 || report.Events != 2 {
		t.Fatalf("verify: %+v, %v", report, err)
	}
}
