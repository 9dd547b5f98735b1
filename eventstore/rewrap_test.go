package eventstore_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/eventstore/eventstoretest"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/testkit"
)

// newKeys makes a local key provider of its own, as a new master key.
func newKeysFor(t *testing.T) *phi.LocalKeyProvider {
	t.Helper()
	path := filepath.Join(t.TempDir(), "phi.key")
	if _, err := phi.CreateLocalKeyFile(path); err != nil {
		t.Fatal(err)
	}
	k, err := phi.OpenLocalKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func storeWithKeys(t *testing.T, keys phi.KeyProvider) *eventstore.Store {
	t.Helper()
	reg, err := eventstore.NewRegistry(eventstoretest.Specs())
	if err != nil {
		t.Fatal(err)
	}
	s, err := eventstore.New(testkit.MustAppPool(t), reg, keys, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Retiring a tenant's key-encryption key: after Rewrap the PHI opens with
// the new provider alone, the old one opens nothing, a second run finds
// everything current, and a shredded key stays shredded.
func TestRewrapMovesEveryKeyToTheNewProvider(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	tenant := testkit.MustTenant(t)
	oldKeys, newKeys := newKeysFor(t), newKeysFor(t)
	before := storeWithKeys(t, oldKeys)
	var streams []chartstream.StreamRef
	for range 3 {
		st := eventstoretest.Stream()
		if _, err := before.Append(ctx, tenant, st, chartstream.NoStream,
			eventstoretest.NewEvent("test.noted", map[string]any{"name": "Ada", "note": "private"})); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	if err := before.ShredSubject(ctx, tenant, streams[2].ID); err != nil {
		t.Fatal(err)
	}

	after := storeWithKeys(t, newKeys)
	stats, err := after.Rewrap(ctx, tenant, oldKeys, nil)
	if err != nil || stats.Rewrapped != 2 || stats.Current != 0 {
		t.Fatalf("Rewrap = %+v, %v; want 2 keys rewrapped", stats, err)
	}
	for i, st := range streams {
		events, err := storeWithKeys(t, newKeys).ReadStream(ctx, tenant, st, 1)
		if err != nil {
			t.Fatalf("stream %d with the new provider: %v", i, err)
		}
		var body map[string]any
		_ = json.Unmarshal(events[0].Payload, &body)
		if erased := i == 2; erased != (body["note"] == nil) || !erased && body["note"] != "private" {
			t.Errorf("stream %d reads %v with the new provider; want the note unless shredded", i, body)
		}
		if _, err := storeWithKeys(t, oldKeys).ReadStream(ctx, tenant, st, 1); i < 2 && !errors.Is(err, phi.ErrDecrypt) {
			t.Errorf("stream %d still opens with the retired provider: %v", i, err)
		}
	}
	if stats, err := after.Rewrap(ctx, tenant, oldKeys, nil); err != nil || stats.Rewrapped != 0 || stats.Current != 2 {
		t.Errorf("second Rewrap = %+v, %v; want both current", stats, err)
	}
	// A provider that can open none of them is refused, not ignored.
	if _, err := storeWithKeys(t, newKeysFor(t)).Rewrap(ctx, tenant, oldKeys, nil); err == nil {
		t.Error("Rewrap by a provider that opens nothing succeeded")
	}
}
