package medicationorder

import (
	"context"
	"testing"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/decision"
	"github.com/chartstream/chartstream/commands/patient"
)

// streams is an in-memory EventStore holding given streams of one tenant;
// it records appends and refuses them at a stale expected version.
type streams struct {
	tenant   chartstream.TenantID
	events   map[chartstream.StreamRef][]chartstream.Event
	appended []chartstream.NewEvent
}

func (s *streams) ReadStream(_ context.Context, tenant chartstream.TenantID, ref chartstream.StreamRef, _ int64) ([]chartstream.Event, error) {
	if tenant != s.tenant {
		return nil, nil
	}
	return s.events[ref], nil
}

func (s *streams) Append(_ context.Context, _ chartstream.TenantID, ref chartstream.StreamRef, expected int64, events ...chartstream.NewEvent) (chartstream.AppendResult, error) {
	if expected != int64(len(s.events[ref])) {
		return chartstream.AppendResult{}, chartstream.Errorf(chartstream.ECONFLICT, "stale")
	}
	s.appended = append(s.appended, events...)
	return chartstream.AppendResult{Version: expected + int64(len(events)), Positions: []int64{41, 42}[:len(events)]}, nil
}

// given stores the payloads as the stream's events, numbered from 1.
func given[E decision.Payload](tb testing.TB, s *streams, ref chartstream.StreamRef, payloads ...E) {
	tb.Helper()
	encoded, err := decision.Encode(chartstream.Metadata{}, payloads)
	if err != nil {
		tb.Fatal(err)
	}
	for i, e := range encoded {
		s.events[ref] = append(s.events[ref], chartstream.Event{Tenant: s.tenant, Stream: ref, Version: int64(i + 1), Type: e.Type, SchemaVersion: 1, Payload: e.Payload})
	}
}

func TestPrescribeReadsThePatientsAllergies(t *testing.T) {
	t.Parallel()
	store := &streams{tenant: chartstream.NewTenantID(), events: map[chartstream.StreamRef][]chartstream.Event{}}
	given(t, store, patient.Stream(patientID), []patient.Event{registered, allergic}...)
	h := NewPrescribeMedicationHandler(store)

	_, err := h.Handle(context.Background(), store.tenant, chartstream.Metadata{}, prescribe())
	if code := chartstream.ErrorCode(err); code != chartstream.EUNPROCESSABLE || len(store.appended) != 0 {
		t.Fatalf("allergic patient: code %q (%v), %d appended", code, err, len(store.appended))
	}
	cmd := prescribe()
	cmd.Override = &Override{Reason: "no alternative"}
	res, err := h.Handle(context.Background(), store.tenant, chartstream.Metadata{}, cmd)
	if err != nil || res.ID != orderID || res.Version != 1 || res.Position != 41 {
		t.Fatalf("with override: %+v, %v", res, err)
	}
	if len(store.appended) != 1 || store.appended[0].Type != TypePrescribed {
		t.Fatalf("appended %+v", store.appended)
	}
	if _, err := h.Handle(context.Background(), chartstream.NewTenantID(), chartstream.Metadata{}, cmd); chartstream.ErrorCode(err) != chartstream.ENOTFOUND {
		t.Fatalf("patient of another tenant: %v", err)
	}
}

func TestDiscontinueChecksExpectedVersion(t *testing.T) {
	t.Parallel()
	store := &streams{tenant: chartstream.NewTenantID(), events: map[chartstream.StreamRef][]chartstream.Event{}}
	given(t, store, Stream(orderID), prescribed())
	h := NewDiscontinueMedicationHandler(store)
	stale, current := int64(0), int64(1)

	_, err := h.Handle(context.Background(), store.tenant, chartstream.Metadata{}, DiscontinueMedication{OrderID: orderID, ExpectedVersion: &stale})
	if code := chartstream.ErrorCode(err); code != chartstream.EPRECONDITION {
		t.Fatalf("stale version: code %q (%v)", code, err)
	}
	res, err := h.Handle(context.Background(), store.tenant, chartstream.Metadata{}, DiscontinueMedication{OrderID: orderID, ExpectedVersion: &current})
	if err != nil || res.Version != 2 {
		t.Fatalf("current version: %+v, %v", res, err)
	}
}
