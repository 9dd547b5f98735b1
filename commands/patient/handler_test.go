package patient

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/decision"
)

// fakeStore is an in-memory EventStore for handler tests of retries and
// preconditions. It enforces expected versions and unique claims like the
// real store; interfere, when set, runs inside every Append before the
// version check, to play a concurrent writer.
type fakeStore struct {
	mu        sync.Mutex
	streams   map[streamKey][]chartstream.Event
	claims    map[string]chartstream.StreamRef
	position  int64
	appends   int
	reads     int
	interfere func(s *fakeStore, tenant chartstream.TenantID, stream chartstream.StreamRef, attempt int)
}

type streamKey struct {
	tenant chartstream.TenantID
	stream chartstream.StreamRef
}

func newFakeStore() *fakeStore {
	return &fakeStore{streams: map[streamKey][]chartstream.Event{}, claims: map[string]chartstream.StreamRef{}}
}

func (s *fakeStore) ReadStream(_ context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, from int64) ([]chartstream.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	events := s.streams[streamKey{tenant, stream}]
	return slices.Clone(events[min(max(from-1, 0), int64(len(events))):]), nil
}

func (s *fakeStore) Append(_ context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, expected int64, events ...chartstream.NewEvent) (chartstream.AppendResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appends++
	if s.interfere != nil {
		s.interfere(s, tenant, stream, s.appends)
	}
	key := streamKey{tenant, stream}
	version := int64(len(s.streams[key]))
	if expected != chartstream.AnyVersion && expected != version {
		return chartstream.AppendResult{}, chartstream.Errorf(chartstream.ECONFLICT, "stream is at another version")
	}
	for _, e := range events {
		for _, c := range e.Claims {
			k := tenant.String() + "/" + c.Scope + "/" + c.Value
			if owner, ok := s.claims[k]; ok && owner != stream {
				return chartstream.AppendResult{}, chartstream.Errorf(chartstream.ECONFLICT, "value already claimed")
			}
		}
	}
	var res chartstream.AppendResult
	for _, e := range events {
		for _, c := range e.Claims {
			s.claims[tenant.String()+"/"+c.Scope+"/"+c.Value] = stream
		}
		s.add(tenant, stream, e)
		res.Positions = append(res.Positions, s.position)
	}
	res.Version = int64(len(s.streams[key]))
	return res, nil
}

// add appends without checks; the caller holds mu.
func (s *fakeStore) add(tenant chartstream.TenantID, stream chartstream.StreamRef, e chartstream.NewEvent) {
	key := streamKey{tenant, stream}
	s.position++
	s.streams[key] = append(s.streams[key], chartstream.Event{
		Position: s.position, Tenant: tenant, Stream: stream, Version: int64(len(s.streams[key]) + 1),
		ID: uuid.New(), Type: e.Type, SchemaVersion: 1, Payload: e.Payload, Metadata: e.Metadata, RecordedAt: now,
	})
}

// concurrentObservation is an interfere func: a device records an
// observation on the same patient just before the first `times` appends.
func concurrentObservation(times int) func(*fakeStore, chartstream.TenantID, chartstream.StreamRef, int) {
	return func(s *fakeStore, tenant chartstream.TenantID, stream chartstream.StreamRef, attempt int) {
		if attempt > 1 && attempt <= 1+times { // attempt 1 is the registration
			body, _ := json.Marshal(ObservationRecorded{ObservationID: uuid.New(), Code: "8310-5", System: LOINC, ValueCode: "x", EffectiveAt: now})
			s.add(tenant, stream, chartstream.NewEvent{Type: TypeObservationRecorded, Payload: body})
		}
	}
}

// mustRegister registers the test patient in tenant and returns the store.
func mustRegister(tb testing.TB, store *fakeStore, tenant chartstream.TenantID) Result {
	tb.Helper()
	h := NewRegisterPatientHandler(store)
	h.now = func() time.Time { return now }
	res, err := h.Handle(context.Background(), tenant, chartstream.Metadata{Actor: "clerk-1"}, register())
	if err != nil {
		tb.Fatalf("register: %v", err)
	}
	return res
}

func observationHandler(store *fakeStore) RecordObservationHandler {
	h := NewRecordObservationHandler(store)
	h.now = func() time.Time { return now }
	return h
}

func TestRegisterClaimsMRNAndNeverRetries(t *testing.T) {
	t.Parallel()
	store, tenant := newFakeStore(), chartstream.NewTenantID()
	res := mustRegister(t, store, tenant)
	if res.ID != patientID || res.Version != 1 || res.Position != 1 {
		t.Fatalf("result = %+v", res)
	}
	stored := store.streams[streamKey{tenant, Stream(patientID)}][0]
	if stored.Type != TypeRegistered || stored.Metadata.Actor != "clerk-1" {
		t.Fatalf("stored event = %+v", stored)
	}

	h := NewRegisterPatientHandler(store)
	other := with(register(), func(c *RegisterPatient) { c.PatientID = uuid.Nil })
	appends := store.appends
	_, err := h.Handle(context.Background(), tenant, chartstream.Metadata{}, other)
	if code := chartstream.ErrorCode(err); code != chartstream.ECONFLICT {
		t.Fatalf("second patient with same MRN: code %q (%v), want conflict", code, err)
	}
	if store.appends != appends+1 {
		t.Fatalf("registration was attempted %d times, want once", store.appends-appends)
	}
	// The MRN is unique per tenant, not across tenants.
	if _, err := h.Handle(context.Background(), chartstream.NewTenantID(), chartstream.Metadata{}, other); err != nil {
		t.Fatalf("same MRN in another tenant: %v", err)
	}
}

func TestRecordObservationRetriesOnConcurrentAppend(t *testing.T) {
	t.Parallel()
	store, tenant := newFakeStore(), chartstream.NewTenantID()
	mustRegister(t, store, tenant)
	store.interfere = concurrentObservation(decision.Attempts - 1)
	cmd := with(recordObservation(), func(c *RecordObservation) { c.ObservationID = uuid.Nil })
	res, err := observationHandler(store).Handle(context.Background(), tenant, chartstream.Metadata{}, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if res.ID == uuid.Nil || res.Version != int64(1+decision.Attempts) || res.Position != res.Version {
		t.Fatalf("result = %+v", res)
	}
	if store.appends != 1+decision.Attempts {
		t.Fatalf("appends = %d, want %d", store.appends, 1+decision.Attempts)
	}
}

func TestRecordObservationGivesUpAfterAttempts(t *testing.T) {
	t.Parallel()
	store, tenant := newFakeStore(), chartstream.NewTenantID()
	mustRegister(t, store, tenant)
	store.interfere = concurrentObservation(decision.Attempts)
	_, err := observationHandler(store).Handle(context.Background(), tenant, chartstream.Metadata{}, recordObservation())
	if code := chartstream.ErrorCode(err); code != chartstream.ECONFLICT {
		t.Fatalf("code %q (%v), want conflict", code, err)
	}
}

func TestExpectedVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		expected  int64
		interfere bool
		code      string
	}{
		{name: "matches", expected: 1},
		{name: "stale", expected: 0, code: chartstream.EPRECONDITION},
		{name: "matches but the record moves on before the append", expected: 1, interfere: true, code: chartstream.EPRECONDITION},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store, tenant := newFakeStore(), chartstream.NewTenantID()
			mustRegister(t, store, tenant)
			if tt.interfere {
				store.interfere = concurrentObservation(1)
			}
			cmd := with(recordObservation(), func(c *RecordObservation) { c.ExpectedVersion = &tt.expected })
			_, err := observationHandler(store).Handle(context.Background(), tenant, chartstream.Metadata{}, cmd)
			if code := chartstream.ErrorCode(err); code != tt.code {
				t.Fatalf("code %q (%v), want %q", code, err, tt.code)
			}
		})
	}
}

func TestHandlersRefuseBeforeTouchingTheStore(t *testing.T) {
	t.Parallel()
	store, tenant := newFakeStore(), chartstream.NewTenantID()
	cmd := with(recordObservation(), func(c *RecordObservation) { c.EffectiveAt = "" })
	if _, err := observationHandler(store).Handle(context.Background(), tenant, chartstream.Metadata{}, cmd); chartstream.ErrorCode(err) != chartstream.EINVALID {
		t.Fatalf("invalid command: %v", err)
	}
	if store.reads+store.appends != 0 {
		t.Fatalf("invalid command read %d and appended %d times", store.reads, store.appends)
	}
}

func TestAnotherTenantsPatientIsNotFound(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	mustRegister(t, store, chartstream.NewTenantID())
	_, err := observationHandler(store).Handle(context.Background(), chartstream.NewTenantID(), chartstream.Metadata{}, recordObservation())
	if code := chartstream.ErrorCode(err); code != chartstream.ENOTFOUND {
		t.Fatalf("code %q (%v), want not found", code, err)
	}
}

func TestNewHandlerPanicsOnNilStore(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	NewRecordDeathHandler(nil)
}
