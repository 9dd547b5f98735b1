package observations_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/projections"
	pt "github.com/chartstream/chartstream/projections/internal/projectiontest"
	"github.com/chartstream/chartstream/projections/observations"
)

func TestObservations(t *testing.T) {
	t.Parallel()
	env := pt.MustEnv(t)
	a, b := testkit.MustTenant(t), testkit.MustTenant(t)
	id, enc := uuid.New(), uuid.New()
	t0 := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	payloads := []pt.Payload{patient.PatientRegistered{MRN: "MRN-1", Name: patient.HumanName{Family: "Lovelace"}, BirthDate: "1815-12-10", Sex: patient.SexFemale}}
	var heartRates []uuid.UUID // newest first
	for i := range 5 {
		v := float64(60 + i)
		o := patient.ObservationRecorded{ObservationID: uuid.New(), Code: "8867-4", System: patient.LOINC, Value: &v, Unit: "/min", EffectiveAt: t0.Add(time.Duration(i) * time.Hour)}
		if i == 0 {
			o.EncounterID = &enc
		}
		heartRates = append([]uuid.UUID{o.ObservationID}, heartRates...)
		payloads = append(payloads, o)
	}
	smoking := uuid.New()
	payloads = append(payloads, patient.ObservationRecorded{ObservationID: smoking, Code: "72166-2", System: patient.LOINC, ValueCode: "266919005", EffectiveAt: t0})
	events := env.Append(t, a, patient.Stream(id), payloads...)
	env.ApplyAndCheck(t, observations.Projector{}, a, b, events...)

	list := func(tenant chartstream.TenantID, p observations.ObservationParams) []observations.Observation {
		return pt.AllPages(t, func(cursor string) (projections.Page[observations.Observation], error) {
			p.Cursor = cursor
			return observations.Observations(env.Ctx, env.Pool, tenant, id, p)
		})
	}
	ids := func(os []observations.Observation) []uuid.UUID {
		var ids []uuid.UUID
		for _, o := range os {
			ids = append(ids, o.ObservationID)
		}
		return ids
	}
	if got := ids(list(a, observations.ObservationParams{Code: "8867-4", Limit: 2})); !slices.Equal(got, heartRates) {
		t.Errorf("heart rates in pages of 2: got %v, want %v", got, heartRates)
	}
	window := list(a, observations.ObservationParams{Code: "8867-4", Since: t0.Add(time.Hour), Until: t0.Add(3 * time.Hour)})
	if got, want := ids(window), heartRates[2:4]; !slices.Equal(got, want) {
		t.Errorf("heart rates from 1h to 3h: got %v, want %v", got, want)
	}
	all := list(a, observations.ObservationParams{})
	if len(all) != 6 {
		t.Fatalf("%d observations, want 6", len(all))
	}
	for _, o := range all {
		switch o.ObservationID {
		case heartRates[4]:
			if o.Value == nil || *o.Value != 60 || *o.Unit != "/min" || o.ValueCode != nil || o.EncounterID == nil || *o.EncounterID != enc || !o.EffectiveAt.Equal(t0) {
				t.Errorf("first heart rate: %+v", o)
			}
		case smoking:
			if o.Value != nil || o.Unit != nil || *o.ValueCode != "266919005" || o.EncounterID != nil {
				t.Errorf("smoking status: %+v", o)
			}
		}
	}

	if got := list(b, observations.ObservationParams{}); len(got) != 0 {
		t.Errorf("tenant B sees %d of tenant A's observations", len(got))
	}
	for _, p := range []observations.ObservationParams{{Since: t0, Until: t0}, {Limit: -1}, {Cursor: "x"}} {
		if _, err := observations.Observations(env.Ctx, env.Pool, a, id, p); chartstream.ErrorCode(err) != chartstream.EINVALID {
			t.Errorf("%+v: got %v, want EINVALID", p, err)
		}
	}
}
