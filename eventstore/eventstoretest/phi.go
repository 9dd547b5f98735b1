package eventstoretest

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/testkit"
)

// phiFixture is one patient with a test.noted event on their own stream
// and a test.referred event about them on an encounter stream.
type phiFixture struct {
	tenant            chartstream.TenantID
	patient, referral chartstream.StreamRef
}

func appendPHI(t *testing.T, s *eventstore.Store, tenant chartstream.TenantID) phiFixture {
	t.Helper()
	ctx := testkit.Context(t)
	f := phiFixture{tenant: tenant, patient: Stream(), referral: chartstream.StreamRef{Type: "encounter", ID: uuid.New()}}
	if _, err := s.Append(ctx, tenant, f.patient, chartstream.NoStream,
		NewEvent("test.noted", map[string]any{"n": 1, "name": "Ada Lovelace", "note": "allergic to penicillin"}),
		NewEvent("test.happened", map[string]any{"n": 2})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, tenant, f.referral, chartstream.NoStream,
		NewEvent("test.referred", map[string]any{"patient_id": f.patient.ID, "note": "refer to cardiology"})); err != nil {
		t.Fatal(err)
	}
	return f
}

// read returns the patient's two events and the referral, opened.
func (f phiFixture) read(t *testing.T, s *eventstore.Store) (noted, happened, referred chartstream.Event) {
	t.Helper()
	ctx := testkit.Context(t)
	p, err := s.ReadStream(ctx, f.tenant, f.patient, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.ReadStream(ctx, f.tenant, f.referral, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 2 || len(r) != 1 {
		t.Fatalf("read %d patient and %d referral events, want 2 and 1", len(p), len(r))
	}
	return p[0], p[1], r[0]
}

// wantFields fails the test unless the event's payload has these values.
func wantFields(t *testing.T, e chartstream.Event, want map[string]any) {
	t.Helper()
	got := Payload(t, e)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s payload %s = %v, want %v", e.Type, k, got[k], v)
		}
	}
}

func testPHISealed(t *testing.T, newStore NewStoreFn) {
	ctx := testkit.Context(t)
	s := newStore(t, eventstore.Config{}, Specs())
	f := appendPHI(t, s, testkit.MustTenant(t))
	noted, _, referred := f.read(t, s)
	wantFields(t, noted, map[string]any{"n": float64(1), "name": "Ada Lovelace", "note": "allergic to penicillin"})
	wantFields(t, referred, map[string]any{"patient_id": f.patient.ID.String(), "note": "refer to cardiology"})

	// ReadAll hands out PHI sealed, under the patient's key even for the
	// event on the encounter stream; Open opens it, also in a store with
	// a cold key cache.
	events := ReadAllTenant(t, ctx, s, f.tenant, 3, 10)
	fresh := newStore(t, eventstore.Config{}, Specs())
	for _, e := range events {
		if e.Type == "test.happened" {
			if e.Sealed != nil {
				t.Errorf("an event without PHI was sealed")
			}
			continue
		}
		if e.Sealed == nil || e.Sealed.Subject != f.patient.ID {
			t.Fatalf("ReadAll %s: sealed %+v, want sealed under patient %s", e.Type, e.Sealed, f.patient.ID)
		}
		clear := Payload(t, e)
		if _, ok := clear["note"]; ok {
			t.Errorf("ReadAll %s carries the note in the clear", e.Type)
		}
		if err := fresh.Open(ctx, &e); err != nil {
			t.Fatal(err)
		}
		if e.Sealed != nil || Payload(t, e)["note"] == nil {
			t.Errorf("Open %s left %+v", e.Type, e)
		}
	}
}

func testShredSubject(t *testing.T, newStore NewStoreFn) {
	ctx := testkit.Context(t)
	s := newStore(t, eventstore.Config{}, Specs())
	tenant, other := testkit.MustTenant(t), testkit.MustTenant(t)
	f := appendPHI(t, s, tenant)
	kept := appendPHI(t, s, tenant) // another patient of the tenant
	// The same patient id in another tenant is another data subject.
	if _, err := s.Append(ctx, other, f.patient, chartstream.NoStream,
		NewEvent("test.noted", map[string]any{"name": "Grace Hopper"})); err != nil {
		t.Fatal(err)
	}
	f.read(t, s) // warm the key cache: shredding must empty it
	if err := s.ShredSubject(ctx, tenant, f.patient.ID); err != nil {
		t.Fatal(err)
	}

	for name, store := range map[string]*eventstore.Store{"same store": s, "fresh store": newStore(t, eventstore.Config{}, Specs())} {
		noted, happened, referred := f.read(t, store)
		wantFields(t, noted, map[string]any{"n": float64(1), "name": nil, "note": nil})
		wantFields(t, referred, map[string]any{"patient_id": f.patient.ID.String(), "note": nil})
		wantFields(t, happened, map[string]any{"n": float64(2)})
		if !slices.Equal(noted.Erased, []string{"name", "note"}) || !slices.Equal(referred.Erased, []string{"note"}) || happened.Erased != nil {
			t.Errorf("%s: erased %v, %v, %v", name, noted.Erased, referred.Erased, happened.Erased)
		}
		// No new PHI can be recorded for the subject, on its stream or
		// another; an event without PHI still can.
		_, err := store.Append(ctx, tenant, f.patient, 2, NewEvent("test.noted", map[string]any{"note": "new"}))
		WantCode(t, err, chartstream.EUNPROCESSABLE)
		_, err = store.Append(ctx, tenant, Stream(), chartstream.NoStream, NewEvent("test.referred", map[string]any{"patient_id": f.patient.ID, "note": "new"}))
		WantCode(t, err, chartstream.EUNPROCESSABLE)

		keptNoted, _, _ := kept.read(t, store)
		wantFields(t, keptNoted, map[string]any{"name": "Ada Lovelace"})
		theirs, err := store.ReadStream(ctx, other, f.patient, 1)
		if err != nil || len(theirs) != 1 {
			t.Fatalf("%s: other tenant's stream: %d events, %v", name, len(theirs), err)
		}
		wantFields(t, theirs[0], map[string]any{"name": "Grace Hopper"})
	}
	if _, err := s.Append(ctx, tenant, f.patient, 2, NewEvent("test.noted", map[string]any{"n": 3})); err != nil {
		t.Errorf("an event without PHI after shredding: %v", err)
	}
	// Shredding changes no stored byte the hashes cover.
	wantVerified(t, ctx, s, tenant, 7)
}

func testUpcasting(t *testing.T, newStore NewStoreFn) {
	ctx := testkit.Context(t)
	v1 := newStore(t, eventstore.Config{}, Specs())
	tenant, st := testkit.MustTenant(t), Stream()
	if _, err := v1.Append(ctx, tenant, st, chartstream.NoStream, NewEvent("test.versioned", map[string]any{"old": "x", "keep": 1})); err != nil {
		t.Fatal(err)
	}
	v2 := newStore(t, eventstore.Config{}, versionedV2(), renameOld)
	events, err := v2.ReadStream(ctx, tenant, st, 1)
	if err != nil || len(events) != 1 {
		t.Fatalf("read %d events: %v", len(events), err)
	}
	if e := events[0]; e.SchemaVersion != 2 || Payload(t, e)["new"] != "x" || Payload(t, e)["old"] != nil || Payload(t, e)["keep"] != float64(1) {
		t.Errorf("upcast event: version %d, payload %s", e.SchemaVersion, e.Payload)
	}
	// ReadAll hands out the event as stored; Open upcasts it.
	stored := ReadAllTenant(t, ctx, v2, tenant, 1, 10)[0]
	if stored.SchemaVersion != 1 || Payload(t, stored)["old"] != "x" {
		t.Errorf("ReadAll event: version %d, payload %s", stored.SchemaVersion, stored.Payload)
	}
	if err := v2.Open(ctx, &stored); err != nil || stored.SchemaVersion != 2 || Payload(t, stored)["new"] != "x" {
		t.Errorf("opened: version %d, payload %s, %v", stored.SchemaVersion, stored.Payload, err)
	}
	// The old store still reads its own version.
	if old, err := v1.ReadStream(ctx, tenant, st, 1); err != nil || old[0].SchemaVersion != 1 {
		t.Errorf("v1 store read %+v, %v", old, err)
	}
}

// versionedV2 is Specs with test.versioned at schema version 2.
func versionedV2() []chartstream.EventSpec {
	specs := Specs()
	for i := range specs {
		if specs[i].Type == "test.versioned" {
			specs[i].SchemaVersion = 2
		}
	}
	return specs
}

// renameOld upcasts test.versioned v1 to v2, renaming "old" to "new".
var renameOld = eventstore.Upcaster{Type: "test.versioned", From: 1, Fn: func(p json.RawMessage) (json.RawMessage, error) {
	return renameField(p, "old", "new")
}}

func testNewRegistryRefuses(t *testing.T, _ NewStoreFn) {
	cases := map[string][]chartstream.EventSpec{
		"v2 without an upcaster": versionedV2(),
		"a type twice":           append(Specs(), chartstream.EventSpec{Type: "test.happened", SchemaVersion: 1}),
		"a subject that is PHI":  {{Type: "test.referred", SchemaVersion: 1, PHI: []string{"note", "patient_id"}, Subject: "patient_id"}},
		"a bad type name":        {{Type: "Test Happened", SchemaVersion: 1}},
		"schema version 0":       {{Type: "test.happened"}},
	}
	for name, specs := range cases {
		if _, err := eventstore.NewRegistry(specs); err == nil {
			t.Errorf("NewRegistry accepted %s", name)
		}
	}
	if _, err := eventstore.NewRegistry(Specs(), eventstore.Upcaster{Type: "test.unknown", From: 1, Fn: renameOld.Fn}); err == nil {
		t.Error("NewRegistry accepted an upcaster for an unknown type")
	}
	if _, err := eventstore.NewRegistry(versionedV2(), renameOld); err != nil {
		t.Errorf("NewRegistry refused v2 with its upcaster: %v", err)
	}
}

func testSnapshots(t *testing.T, newStore NewStoreFn) {
	ctx := testkit.Context(t)
	s := newStore(t, eventstore.Config{}, Specs())
	tenant, other, st := testkit.MustTenant(t), testkit.MustTenant(t), Stream()
	load := func(store *eventstore.Store, tenant chartstream.TenantID) (eventstore.Snapshot, bool) {
		t.Helper()
		snap, ok, err := store.LoadSnapshot(ctx, tenant, st)
		if err != nil {
			t.Fatal(err)
		}
		return snap, ok
	}
	if _, ok := load(s, tenant); ok {
		t.Fatal("a snapshot before any was saved")
	}
	saves := []struct {
		version int64
		state   string
		want    int64
	}{{5, "five", 5}, {3, "three", 5}, {5, "five again", 5}, {7, "seven", 7}}
	for _, sv := range saves {
		if err := s.SaveSnapshot(ctx, tenant, st, eventstore.Snapshot{Version: sv.version, SchemaVersion: 2, State: []byte(sv.state)}); err != nil {
			t.Fatal(err)
		}
		snap, ok := load(s, tenant)
		if !ok || snap.Version != sv.want || snap.SchemaVersion != 2 {
			t.Fatalf("after saving version %d: loaded %+v, %v; want version %d", sv.version, snap, ok, sv.want)
		}
	}
	if snap, ok := load(newStore(t, eventstore.Config{}, Specs()), tenant); !ok || string(snap.State) != "seven" {
		t.Errorf("a fresh store loaded %q, %v", snap.State, ok)
	}
	if _, ok := load(s, other); ok {
		t.Error("another tenant loaded the snapshot")
	}
	if err := s.ShredSubject(ctx, tenant, st.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveSnapshot(ctx, tenant, st, eventstore.Snapshot{Version: 9, State: []byte("nine")}); err != nil {
		t.Fatal(err)
	}
	if _, ok := load(s, tenant); ok {
		t.Error("a snapshot loaded after its subject was shredded")
	}
}

// renameField returns the JSON object payload with member from renamed to.
func renameField(payload json.RawMessage, from, to string) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, err
	}
	if v, ok := m[from]; ok {
		m[to] = v
		delete(m, from)
	}
	return json.Marshal(m)
}

// A shredding reaches every process's key cache at once, not after the
// cache's TTL: a store that had the key cached (another process, say the
// projector's) reads the subject's PHI as erased within a second.
func testShreddingReachesEveryCache(t *testing.T, newStore NewStoreFn) {
	ctx, cancel := context.WithCancel(testkit.Context(t))
	defer cancel()
	watching := newStore(t, eventstore.Config{}, Specs())
	done := make(chan struct{})
	go func() { defer close(done); watching.WatchKeys(ctx, testkit.MustAppPool(t)) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for !watching.WatchingKeys() {
		if time.Now().After(deadline) {
			t.Fatal("the store never started listening for shreddings")
		}
		time.Sleep(10 * time.Millisecond)
	}
	tenant := testkit.MustTenant(t)
	f := appendPHI(t, watching, tenant)
	f.read(t, watching) // the key is cached here now
	if err := newStore(t, eventstore.Config{}, Specs()).ShredSubject(ctx, tenant, f.patient.ID); err != nil {
		t.Fatal(err)
	}
	shredded := time.Now()
	for {
		noted, _, _ := f.read(t, watching)
		if slices.Equal(noted.Erased, []string{"name", "note"}) {
			break
		}
		// Seconds on a loaded machine, not the cache's minutes.
		if time.Since(shredded) > 5*time.Second {
			t.Fatal("the other store still opens the shredded subject's PHI 5 s later")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
