package analytics_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/encounter"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/projections/analytics"
)

// A census answer gives no small cell away by subtraction: census(D) =
// census(D-1) + admissions - discharges (no transfers here), so wherever
// exactly one of the four is hidden, an analyst can solve for it. Day 2
// admits 3 (the census shows 15 then 18, discharges 0), day 3 discharges
// 12 (the census falls to a hidden 6), day 4 admits 12 (census 18).
func TestCensusSmallCellsCannotBeSubtractedOut(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	tenant := testkit.MustTenant(t)
	d1 := time.Date(2026, 5, 10, 8, 0, 0, 0, time.UTC)
	var events []chartstream.Event
	admit := func(day time.Time, n int) []uuid.UUID {
		var ids []uuid.UUID
		for range n {
			id := uuid.New()
			ids = append(ids, id)
			events = append(events, event(t, tenant, id, encounter.TypeStarted, day, encounter.EncounterStarted{PatientID: uuid.New(), Class: "inpatient", Location: "W"}))
		}
		return ids
	}
	first := admit(d1, 15)
	admit(d1.AddDate(0, 0, 1), 3)
	for _, id := range first[:12] {
		events = append(events, event(t, tenant, id, encounter.TypeDischarged, d1.AddDate(0, 0, 2), encounter.EncounterDischarged{}))
	}
	admit(d1.AddDate(0, 0, 3), 12)
	apply(t, tenant, events...)
	testkit.WaitReplica(t)

	a, _, err := reader(t, "DATABASE_REPLICA_URL", 11).Census(ctx, tenant, analytics.Range{From: analytics.Day(d1), To: analytics.Day(d1.AddDate(0, 0, 3))}, "")
	if err != nil || len(a.Rows) != 4 {
		t.Fatalf("census %+v (%v), want 4 days", a.Rows, err)
	}
	if r := a.Rows[0]; r.Census == nil || *r.Census != 15 || r.Admissions == nil || *r.Admissions != 15 {
		t.Errorf("day 1: %+v, want census and admissions 15 shown", r)
	}
	for i := 1; i < len(a.Rows); i++ {
		prev, row := a.Rows[i-1], a.Rows[i]
		if found, ok := solve(prev.Census, row.Census, row.Admissions, row.Discharges); ok && found.value > 0 && found.value < 11 {
			t.Errorf("%s: a suppressed %v is worked out by subtraction: %+v after %+v", row.Day, found, row, prev)
		}
	}
}

// recovered is a value solved for, and which cell it was.
type recovered struct {
	name  string
	value int64
}

func (r recovered) String() string { return fmt.Sprintf("%s of %d", r.name, r.value) }

// solve solves census = prev + admissions - discharges for its one null
// term; false when more than one (or none) is null.
func solve(prev, census, adm, dis *int64) (recovered, bool) {
	terms := map[string]*int64{"previous census": prev, "census": census, "admissions": adm, "discharges": dis}
	var unknown string
	for name, v := range terms {
		if v == nil {
			if unknown != "" {
				return recovered{}, false
			}
			unknown = name
		}
	}
	switch unknown {
	case "previous census":
		return recovered{unknown, *census - *adm + *dis}, true
	case "census":
		return recovered{unknown, *prev + *adm - *dis}, true
	case "admissions":
		return recovered{unknown, *census - *prev + *dis}, true
	case "discharges":
		return recovered{unknown, *prev + *adm - *census}, true
	}
	return recovered{}, false
}

// The coded results of a row are its observations less its numeric ones:
// when they are a small cell, the numeric count is suppressed too.
func TestObservationCodedCountCannotBeSubtractedOut(t *testing.T) {
	t.Parallel()
	tenant := testkit.MustTenant(t)
	day := time.Date(2026, 5, 12, 0, 0, 0, 0, time.UTC)
	events := observations(t, tenant, day, "8867-4", 15)
	for range 3 { // coded, with a unit: no command records it so, an import might
		events = append(events, event(t, tenant, uuid.New(), patient.TypeObservationRecorded, day, patient.ObservationRecorded{
			ObservationID: uuid.New(), Code: "8867-4", System: patient.LOINC, ValueCode: "LA6576-8", Unit: "/min", EffectiveAt: day.Add(time.Hour)}))
	}
	apply(t, tenant, events...)
	testkit.WaitReplica(t)
	a, _, err := reader(t, "DATABASE_REPLICA_URL", 11).Observations(testkit.Context(t), tenant, analytics.Range{From: day, To: day}, "")
	if err != nil || len(a.Rows) != 1 {
		t.Fatalf("observations %+v (%v), want one row", a.Rows, err)
	}
	if r := a.Rows[0]; r.Observations != nil && r.NumericCount != nil && *r.Observations-*r.NumericCount == 3 {
		t.Errorf("%+v: the 3 coded results are worked out by subtraction", r)
	}
}

// A location is free text and can name a person; one that fewer than
// MinCell patients arrived at is withheld, name and rows, however its
// patients arrived. With a threshold of 1 every location is shown, so the
// rule, not the data, is what hides them.
func TestCensusWithholdsLocationsFewPatientsArrivedAt(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	tenant := testkit.MustTenant(t)
	day := time.Date(2026, 6, 3, 8, 0, 0, 0, time.UTC)
	const home, office = "Ada Lovelace's home, 12 Elm St", "Dr Babbage's rooms"
	var events []chartstream.Event
	start := func(location string) uuid.UUID {
		id := uuid.New()
		events = append(events, event(t, tenant, id, encounter.TypeStarted, day, encounter.EncounterStarted{PatientID: uuid.New(), Class: "inpatient", Location: location}))
		return id
	}
	for range 12 {
		start("Ward 6")
	}
	start(home)
	for range 2 {
		events = append(events, event(t, tenant, start("Ward 7"), encounter.TypePatientTransferred, day.Add(time.Hour), encounter.PatientTransferred{Location: office}))
	}
	apply(t, tenant, events...)
	testkit.WaitReplica(t)

	locations := func(minCell int, location string) map[string]bool {
		t.Helper()
		a, _, err := reader(t, "DATABASE_REPLICA_URL", minCell).Census(ctx, tenant, analytics.Range{From: analytics.Day(day), To: analytics.Day(day)}, location)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, r := range a.Rows {
			got[r.Location] = true
		}
		return got
	}
	if got := locations(11, ""); len(got) != 1 || !got["Ward 6"] {
		t.Errorf("min cell 11: locations %v, want Ward 6 alone", got)
	}
	for _, l := range []string{home, office, "Ward 7"} {
		if got := locations(11, l); len(got) != 0 {
			t.Errorf("min cell 11, asked for %q: locations %v, want none", l, got)
		}
	}
	if got := locations(1, ""); len(got) != 4 {
		t.Errorf("min cell 1: locations %v, want all 4", got)
	}
}
