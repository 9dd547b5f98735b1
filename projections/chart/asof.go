package chart

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/encounter"
	"github.com/chartstream/chartstream/commands/medicationorder"
	"github.com/chartstream/chartstream/commands/patient"
)

// Replay rebuilds a patient's chart in memory from the events of the
// patient's streams (its own, its encounters, its medication orders;
// opened, in commit order), for time travel: after the events up to an
// instant, Chart is the chart as it stood then. It follows exactly what
// the chart, census and orders projectors store and PatientChart reads
// back (a test holds the two equal).
type Replay struct {
	c          Chart
	registered bool
	allergies  map[uuid.UUID]*allergyState
	conditions map[uuid.UUID]*conditionState
	vitals     map[string]Vital
	orders     map[uuid.UUID]*orderState
	encounters map[uuid.UUID]*encounterState
}

// NewReplay returns a replay that has seen no event.
func NewReplay() *Replay {
	return &Replay{allergies: map[uuid.UUID]*allergyState{}, conditions: map[uuid.UUID]*conditionState{},
		vitals: map[string]Vital{}, orders: map[uuid.UUID]*orderState{}, encounters: map[uuid.UUID]*encounterState{}}
}

// Chart is the chart after the events applied so far. Errors: ENOTFOUND
// before the registration.
func (r *Replay) Chart() (Chart, error) {
	if !r.registered {
		return Chart{}, chartstream.Errorf(chartstream.ENOTFOUND, "patient not found")
	}
	return r.chart(), nil
}

type allergyState struct {
	Allergy
	active bool
}

type conditionState struct {
	Condition
	active bool
}

type orderState struct {
	Medication
	active bool
}

type encounterState struct {
	Encounter
	inProgress bool
}

// Demographics is Chart without its lists (allergies, conditions,
// medications, vitals, encounters): what a FHIR Patient shows, cheap to
// take after every event.
func (r *Replay) Demographics() (Chart, error) {
	if !r.registered {
		return Chart{}, chartstream.Errorf(chartstream.ENOTFOUND, "patient not found")
	}
	return r.c, nil
}

// Apply applies the next event; one that does not decode is an error.
func (r *Replay) Apply(e chartstream.Event) error {
	switch e.Stream.Type {
	case patient.StreamType:
		p, err := patient.Decode(e)
		if err != nil {
			return fmt.Errorf("chart: replay: %w", err)
		}
		r.applyPatient(e, p)
		r.c.Version, r.c.UpdatedAt = e.Version, e.RecordedAt
	case encounter.StreamType:
		p, err := encounter.Decode(e)
		if err != nil {
			return fmt.Errorf("chart: replay: %w", err)
		}
		r.applyEncounter(e, p)
	case medicationorder.StreamType:
		p, err := medicationorder.Decode(e)
		if err != nil {
			return fmt.Errorf("chart: replay: %w", err)
		}
		r.applyOrder(e, p)
	}
	return nil
}

func (r *Replay) applyPatient(e chartstream.Event, payload patient.Event) {
	switch p := payload.(type) {
	case patient.PatientRegistered:
		r.registered = true
		r.c.PatientID = e.Stream.ID
		r.c.MRN, r.c.BirthDate, r.c.Sex = text(p.MRN), text(p.BirthDate), text(string(p.Sex))
		r.c.FamilyName, r.c.GivenNames = text(p.Name.Family), names(p.Name.Given)
		r.c.Phone, r.c.Email = text(p.Contact.Phone), text(p.Contact.Email)
	case patient.DemographicsUpdated:
		if n := p.Name; n != nil {
			r.c.FamilyName, r.c.GivenNames = text(n.Family), names(n.Given)
		}
		if p.BirthDate != nil {
			r.c.BirthDate = text(*p.BirthDate)
		}
		if p.Sex != nil {
			r.c.Sex = text(string(*p.Sex))
		}
		if c := p.Contact; c != nil {
			r.c.Phone, r.c.Email = text(c.Phone), text(c.Email)
		}
	case patient.AllergyRecorded:
		if _, seen := r.allergies[p.AllergyID]; !seen {
			r.allergies[p.AllergyID] = &allergyState{active: true, Allergy: Allergy{AllergyID: p.AllergyID, SubstanceCode: p.Substance.Code,
				SubstanceDisplay: text(p.Substance.Display), SubstanceSystem: p.Substance.System, Criticality: string(p.Criticality),
				Reaction: text(p.Reaction), RecordedAt: e.RecordedAt}}
		}
	case patient.AllergyRefuted:
		if a := r.allergies[p.AllergyID]; a != nil {
			a.active = false
		}
	case patient.ConditionDiagnosed:
		if _, seen := r.conditions[p.ConditionID]; !seen {
			r.conditions[p.ConditionID] = &conditionState{active: true, Condition: Condition{ConditionID: p.ConditionID, Code: p.Code,
				System: p.System, Display: text(p.Display), Onset: text(p.Onset), RecordedAt: e.RecordedAt}}
		}
	case patient.ConditionResolved:
		if c := r.conditions[p.ConditionID]; c != nil {
			c.active = false
		}
	case patient.ObservationRecorded:
		if p.System != patient.LOINC || !IsVitalSign(p.Code) {
			return
		}
		// The latest effective_at wins, ties to the larger id.
		// PostgreSQL keeps microseconds.
		old, seen := r.vitals[p.Code]
		at := p.EffectiveAt.Round(time.Microsecond)
		if seen && !old.EffectiveAt.Before(at) && (!old.EffectiveAt.Equal(at) || bytes.Compare(old.ObservationID[:], p.ObservationID[:]) >= 0) {
			return
		}
		r.vitals[p.Code] = Vital{Code: p.Code, System: p.System, ObservationID: p.ObservationID, Value: p.Value,
			Unit: text(p.Unit), ValueCode: text(p.ValueCode), EffectiveAt: p.EffectiveAt.Round(time.Microsecond)}
	case patient.PatientErased:
		r.c.MRN, r.c.FamilyName, r.c.GivenNames, r.c.BirthDate, r.c.Phone, r.c.Email, r.c.DeceasedAt = nil, nil, nil, nil, nil, nil, nil
		for _, a := range r.allergies {
			a.Reaction = nil
		}
	case patient.PatientDeceased:
		r.c.Deceased, r.c.DeceasedAt = true, nil
		if !slices.Contains(e.Erased, "deceased_at") && !p.DeceasedAt.IsZero() {
			at := p.DeceasedAt.Round(time.Microsecond)
			r.c.DeceasedAt = &at
		}
	}
}

func (r *Replay) applyEncounter(e chartstream.Event, payload encounter.Event) {
	switch p := payload.(type) {
	case encounter.EncounterStarted:
		if _, seen := r.encounters[e.Stream.ID]; !seen {
			r.encounters[e.Stream.ID] = &encounterState{inProgress: true, Encounter: Encounter{EncounterID: e.Stream.ID,
				Class: string(p.Class), Location: p.Location, StartedAt: e.RecordedAt}}
		}
	case encounter.PatientTransferred:
		if enc := r.encounters[e.Stream.ID]; enc != nil {
			enc.Location = p.Location
		}
	case encounter.EncounterDischarged:
		if enc := r.encounters[e.Stream.ID]; enc != nil {
			enc.inProgress = false
		}
	}
}

func (r *Replay) applyOrder(e chartstream.Event, payload medicationorder.Event) {
	switch p := payload.(type) {
	case medicationorder.MedicationPrescribed:
		if _, seen := r.orders[e.Stream.ID]; !seen {
			r.orders[e.Stream.ID] = &orderState{active: true, Medication: Medication{OrderID: e.Stream.ID, Code: p.Medication.Code,
				Display: text(p.Medication.Display), System: p.Medication.System, Dose: p.Dose, Route: p.Route, Frequency: p.Frequency,
				Prescriber: p.Prescriber, PrescribedAt: e.RecordedAt}}
		}
	case medicationorder.MedicationDiscontinued:
		if o := r.orders[e.Stream.ID]; o != nil {
			o.active = false
		}
	}
}

// chart lists what is active in PatientChart's orders.
func (r *Replay) chart() Chart {
	c := r.c
	c.Allergies = active(r.allergies, func(a *allergyState) (Allergy, bool) { return a.Allergy, a.active },
		func(a Allergy) (time.Time, uuid.UUID) { return a.RecordedAt, a.AllergyID })
	c.Conditions = active(r.conditions, func(s *conditionState) (Condition, bool) { return s.Condition, s.active },
		func(s Condition) (time.Time, uuid.UUID) { return s.RecordedAt, s.ConditionID })
	c.Medications = active(r.orders, func(o *orderState) (Medication, bool) { return o.Medication, o.active },
		func(m Medication) (time.Time, uuid.UUID) { return m.PrescribedAt, m.OrderID })
	c.Encounters = active(r.encounters, func(e *encounterState) (Encounter, bool) { return e.Encounter, e.inProgress },
		func(e Encounter) (time.Time, uuid.UUID) { return e.StartedAt, e.EncounterID })
	c.Vitals = make([]Vital, 0, len(r.vitals))
	for _, v := range r.vitals {
		c.Vitals = append(c.Vitals, v)
	}
	slices.SortFunc(c.Vitals, func(a, b Vital) int { return cmp.Compare(a.Code, b.Code) })
	return c
}

// active returns the items kept, ordered by time then id (ids compare as
// PostgreSQL compares uuids: bytewise).
func active[S any, T any](m map[uuid.UUID]S, keep func(S) (T, bool), key func(T) (time.Time, uuid.UUID)) []T {
	out := []T{}
	for _, s := range m {
		if t, ok := keep(s); ok {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b T) int {
		ta, ia := key(a)
		tb, ib := key(b)
		if c := ta.Compare(tb); c != 0 {
			return c
		}
		return bytes.Compare(ia[:], ib[:])
	})
	return out
}
