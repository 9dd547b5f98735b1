package decision

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

type noted struct {
	PatientID string `json:"patient_id"`
	Note      string `json:"note"`
}

func (noted) EventType() string { return "test.noted" }

// appender returns its scripted errors in turn, then succeeds.
type appender struct {
	errs  []error
	calls int
}

func (a *appender) Append(_ context.Context, _ chartstream.TenantID, _ chartstream.StreamRef, expected int64, events ...chartstream.NewEvent) (chartstream.AppendResult, error) {
	a.calls++
	if len(a.errs) > 0 {
		err := a.errs[0]
		a.errs = a.errs[1:]
		return chartstream.AppendResult{}, err
	}
	return chartstream.AppendResult{Version: expected + int64(len(events)), Positions: []int64{7}}, nil
}

func run(t *testing.T, store *appender, plan Plan, payloads ...noted) (chartstream.AppendResult, int, error) {
	t.Helper()
	loads := 0
	load := func(context.Context) (struct{}, int64, error) { loads++; return struct{}{}, 3, nil }
	decide := func(struct{}) ([]noted, error) { return payloads, nil }
	res, err := Run(context.Background(), store, chartstream.NewTenantID(), plan, load, decide)
	return res, loads, err
}

func TestRunRetriesOnlyConflicts(t *testing.T) {
	t.Parallel()
	plan := Plan{Stream: chartstream.StreamRef{Type: "test", ID: uuid.New()}, Retry: true}
	conflict := chartstream.Errorf(chartstream.ECONFLICT, "moved on")

	store := &appender{errs: []error{conflict}}
	res, loads, err := run(t, store, plan, noted{})
	if err != nil || loads != 2 || res.Version != 4 || LastPosition(res) != 7 {
		t.Fatalf("after one conflict: %+v, %d loads, %v", res, loads, err)
	}

	down := chartstream.Errorf(chartstream.EUNAVAILABLE, "store down")
	store = &appender{errs: []error{down}}
	if _, loads, err := run(t, store, plan, noted{}); !errors.Is(err, down) || loads != 1 {
		t.Fatalf("unavailable store: %d loads, %v", loads, err)
	}
}

func TestRunAppendsNothingForNoEvents(t *testing.T) {
	t.Parallel()
	store := &appender{}
	res, _, err := run(t, store, Plan{})
	if err != nil || store.calls != 0 || res.Version != 3 {
		t.Fatalf("%+v, %d appends, %v", res, store.calls, err)
	}
}

func TestEncodeAttachesClaims(t *testing.T) {
	t.Parallel()
	events, err := Encode(chartstream.Metadata{Actor: "a"}, []claiming{{MRN: "1"}})
	if err != nil || len(events) != 1 || len(events[0].Claims) != 1 || events[0].Metadata.Actor != "a" || events[0].Type != "test.claimed" {
		t.Fatalf("%+v, %v", events, err)
	}
}

type claiming struct {
	MRN string `json:"mrn"`
}

func (claiming) EventType() string { return "test.claimed" }

func (c claiming) Claims() []chartstream.UniqueClaim {
	return []chartstream.UniqueClaim{{Scope: "test.mrn", Value: c.MRN}}
}

func TestVerifySpecsCatchesMisspeltFields(t *testing.T) {
	t.Parallel()
	good := []chartstream.EventSpec{{Type: "test.noted", SchemaVersion: 1, PHI: []string{"note"}, Subject: "patient_id"}}
	decode := func(e chartstream.Event) (noted, error) {
		var n noted
		err := Unmarshal(e, 1, &n)
		return n, err
	}
	if err := VerifySpecs(good, decode, noted{Note: "n"}); err != nil {
		t.Fatalf("good spec: %v", err)
	}
	for name, specs := range map[string][]chartstream.EventSpec{
		"misspelt PHI":      {{Type: "test.noted", SchemaVersion: 1, PHI: []string{"notes"}}},
		"misspelt subject":  {{Type: "test.noted", SchemaVersion: 1, Subject: "patient"}},
		"no spec":           {},
		"spec no sample":    {good[0], {Type: "test.other", SchemaVersion: 1}},
		"no schema version": {{Type: "test.noted"}},
		"newer than decode": {{Type: "test.noted", SchemaVersion: 2}},
	} {
		if VerifySpecs(specs, decode, noted{}) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
