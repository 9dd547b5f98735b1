package census_test

import (
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/encounter"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/projections"
	"github.com/chartstream/chartstream/projections/census"
	pt "github.com/chartstream/chartstream/projections/internal/projectiontest"
)

func TestEncounters(t *testing.T) {
	t.Parallel()
	env := pt.MustEnv(t)
	a, b := testkit.MustTenant(t), testkit.MustTenant(t)
	ada, grace := uuid.New(), uuid.New()
	// Started in this order: stays in ward 1, moves to ward 2, discharged.
	stays, moves, leaves := uuid.New(), uuid.New(), uuid.New()
	start := func(id, patient uuid.UUID, then ...pt.Payload) []chartstream.Event {
		payloads := append([]pt.Payload{encounter.EncounterStarted{PatientID: patient, Class: encounter.ClassInpatient, Location: "ward-1", Reason: "fall"}}, then...)
		return env.Append(t, a, chartstream.StreamRef{Type: encounter.StreamType, ID: id}, payloads...)
	}
	var events []chartstream.Event
	events = append(events, start(stays, ada)...)
	events = append(events, start(moves, grace, encounter.PatientTransferred{Location: "ward-2"})...)
	events = append(events, start(leaves, ada, encounter.EncounterDischarged{})...)
	env.ApplyAndCheck(t, census.Projector{}, a, b, events...)

	list := func(tenant chartstream.TenantID, p census.EncounterParams) []census.Encounter {
		return pt.AllPages(t, func(cursor string) (projections.Page[census.Encounter], error) {
			p.Cursor = cursor
			return census.Encounters(env.Ctx, env.Pool, tenant, p)
		})
	}
	for _, tc := range []struct {
		name string
		p    census.EncounterParams
		want []uuid.UUID
	}{
		{"ward 1 census", census.EncounterParams{Status: census.StatusInProgress, Location: "ward-1"}, []uuid.UUID{stays}},
		{"ward 2 census", census.EncounterParams{Status: census.StatusInProgress, Location: "ward-2"}, []uuid.UUID{moves}},
		{"in progress", census.EncounterParams{Status: census.StatusInProgress, Limit: 1}, []uuid.UUID{stays, moves}},
		{"finished", census.EncounterParams{Status: census.StatusFinished}, []uuid.UUID{leaves}},
		{"a patient's", census.EncounterParams{PatientID: ada, Limit: 1}, []uuid.UUID{stays, leaves}},
		{"all", census.EncounterParams{Limit: 2}, []uuid.UUID{stays, moves, leaves}},
	} {
		var got []uuid.UUID
		for _, e := range list(a, tc.p) {
			got = append(got, e.EncounterID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
		if got := list(b, tc.p); len(got) != 0 {
			t.Errorf("%s in tenant B: %d of tenant A's encounters", tc.name, len(got))
		}
	}
	done := list(a, census.EncounterParams{Status: census.StatusFinished})[0]
	if done.EndedAt == nil || done.PatientID != ada || done.Class != "inpatient" || done.EndedAt.Before(done.StartedAt) {
		t.Errorf("discharged encounter: %+v", done)
	}
	for _, p := range []census.EncounterParams{{Status: "planned"}, {Limit: -1}, {Cursor: "x"}} {
		if _, err := census.Encounters(env.Ctx, env.Pool, a, p); chartstream.ErrorCode(err) != chartstream.EINVALID {
			t.Errorf("%+v: got %v, want EINVALID", p, err)
		}
	}
}
