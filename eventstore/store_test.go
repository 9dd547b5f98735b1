package eventstore_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/testkit"
)

// testSpecs are the event types the store tests append.
var testSpecs = []chartstream.EventSpec{
	{Type: "test.happened", SchemaVersion: 1},
	{Type: "test.noted", SchemaVersion: 1, PHI: []string{"name", "note"}},
	{Type: "test.referred", SchemaVersion: 1, PHI: []string{"note"}, Subject: "patient_id"},
}

// MustStore returns a store on the app role's pool with a fresh local key.
func MustStore(tb testing.TB, cfg eventstore.Config, upcasters ...eventstore.Upcaster) *eventstore.Store {
	tb.Helper()
	return mustStoreOn(tb, "DATABASE_URL", cfg, testSpecs, upcasters...)
}

func mustStoreOn(tb testing.TB, envVar string, cfg eventstore.Config, specs []chartstream.EventSpec, upcasters ...eventstore.Upcaster) *eventstore.Store {
	tb.Helper()
	reg, err := eventstore.NewRegistry(specs, upcasters...)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := eventstore.New(testkit.MustPool(tb, envVar), reg, mustKeys(tb), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// sharedKeyFile is one local master key for every store of a test binary,
// so stores created by different tests can open each other's PHI.
var sharedKeyFile string

func mustKeys(tb testing.TB) *phi.LocalKeyProvider {
	tb.Helper()
	if sharedKeyFile == "" {
		sharedKeyFile = filepath.Join(tb.TempDir(), "phi.key")
		if _, err := phi.CreateLocalKeyFile(sharedKeyFile); err != nil {
			tb.Fatal(err)
		}
	}
	k, err := phi.OpenLocalKeyFile(sharedKeyFile)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func newEvent(typ string, payload any) chartstream.NewEvent {
	b, err := json.Marshal(payload)
	if err != nil {
		panic(err)
	}
	return chartstream.NewEvent{Type: typ, Payload: b, Metadata: chartstream.Metadata{Actor: "test", CorrelationID: uuid.NewString()}}
}

func stream() chartstream.StreamRef { return chartstream.StreamRef{Type: "patient", ID: uuid.New()} }

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
	report, err := s.Verify(ctx, tenant, nil)
	if err != nil || report.Broken != nil || report.Events != 2 {
		t.Fatalf("verify: %+v, %v", report, err)
	}
}
