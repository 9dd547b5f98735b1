// Package patient is the patient aggregate: registration, demographics,
// allergies, conditions, observations and death. Each command has a pure
// decision (command, current patient, now) -> events or error, run by the
// commands' one runner (commands/internal/decision). Other aggregates that
// must consult a patient (a new encounter, a prescription) use Consult.
package patient

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

// Patient is a patient's record as its events left it. Callers outside this
// package treat it as read-only.
type Patient struct {
	// ID is the patient id, which is also the stream id.
	ID uuid.UUID
	// Version is the version of the last event applied; 0 for a patient
	// never registered.
	Version   int64
	MRN       string
	Name      HumanName
	BirthDate string // YYYY-MM-DD; empty if erased
	Sex       Sex
	Contact   Contact
	// DeceasedAt is when the patient died. It is zero while the patient is
	// alive and also after the date was erased, so ask Deceased.
	DeceasedAt time.Time
	// Allergies holds every recorded allergy, refuted ones included.
	Allergies map[uuid.UUID]Allergy
	// Conditions holds every diagnosed condition, resolved ones included.
	Conditions map[uuid.UUID]Condition

	registered bool
	deceased   bool
	erased     bool
}

// Allergy is an allergy on the patient's record.
type Allergy struct {
	ID          uuid.UUID
	Substance   Coding
	Criticality Criticality
	// Refuted allergies no longer stand in the way of a prescription.
	Refuted bool
}

// Condition is a condition on the patient's problem list.
type Condition struct {
	ID       uuid.UUID
	Code     string
	System   string
	Display  string
	Onset    string // YYYY-MM-DD, may be empty
	Resolved bool
}

// Replay builds a patient from decoded events, numbering them from version
// 1. Tests of other aggregates use it to state the patient they are given.
func Replay(id uuid.UUID, events ...Event) *Patient {
	p := newPatient(id)
	for _, e := range events {
		p.apply(e)
		p.Version++
	}
	return p
}

func newPatient(id uuid.UUID) *Patient {
	return &Patient{
		ID:         id,
		Allergies:  map[uuid.UUID]Allergy{},
		Conditions: map[uuid.UUID]Condition{},
	}
}

// Registered reports whether the patient was ever registered. Every command
// but registration needs a registered patient.
func (p *Patient) Registered() bool { return p.registered }

// Deceased reports whether the patient's death was recorded.
func (p *Patient) Deceased() bool { return p.deceased }

// Erased reports whether the patient's record was erased.
func (p *Patient) Erased() bool { return p.erased }

// RequireLiving fails with ENOTFOUND for a patient never registered and
// with EUNPROCESSABLE for a deceased one: new encounters and medication
// orders are only for the living.
func (p *Patient) RequireLiving() error {
	if err := registered(p); err != nil {
		return err
	}
	if p.Deceased() {
		return chartstream.Errorf(chartstream.EUNPROCESSABLE, "patient is deceased")
	}
	return nil
}

// ActiveAllergy returns the patient's unrefuted allergy to the substance
// with the same system and code, if there is one.
func (p *Patient) ActiveAllergy(substance Coding) (Allergy, bool) {
	for _, a := range p.Allergies {
		if !a.Refuted && a.Substance.System == substance.System && a.Substance.Code == substance.Code {
			return a, true
		}
	}
	return Allergy{}, false
}

// apply folds one event into the state. It never fails: events are facts,
// already decided.
func (p *Patient) apply(e Event) {
	switch e := e.(type) {
	case PatientErased:
		p.erased = true
	case PatientRegistered:
		p.registered = true
		p.MRN, p.Name, p.BirthDate, p.Sex, p.Contact = e.MRN, e.Name, e.BirthDate, e.Sex, e.Contact
	case DemographicsUpdated:
		if e.Name != nil {
			p.Name = *e.Name
		}
		if e.BirthDate != nil {
			p.BirthDate = *e.BirthDate
		}
		if e.Sex != nil {
			p.Sex = *e.Sex
		}
		if e.Contact != nil {
			p.Contact = *e.Contact
		}
	case AllergyRecorded:
		p.Allergies[e.AllergyID] = Allergy{ID: e.AllergyID, Substance: e.Substance, Criticality: e.Criticality}
	case AllergyRefuted:
		a := p.Allergies[e.AllergyID]
		a.Refuted = true
		p.Allergies[e.AllergyID] = a
	case ConditionDiagnosed:
		p.Conditions[e.ConditionID] = Condition{ID: e.ConditionID, Code: e.Code, System: e.System, Display: e.Display, Onset: e.Onset}
	case ConditionResolved:
		c := p.Conditions[e.ConditionID]
		c.Resolved = true
		p.Conditions[e.ConditionID] = c
	case ObservationRecorded:
		// Nothing is kept: no decision depends on past observations, so
		// the state stays small however many the patient has.
	case PatientDeceased:
		p.deceased = true
		p.DeceasedAt = e.DeceasedAt
	}
}

// snapshotVersion is the format of encodeSnapshot: change it with the
// format, and older snapshots are ignored (the history is replayed).
const snapshotVersion = 1

// snapshot is a patient's state as a snapshot stores it.
type snapshot struct {
	Version    int64       `json:"version"`
	MRN        string      `json:"mrn,omitempty"`
	Name       HumanName   `json:"name"`
	BirthDate  string      `json:"birth_date,omitempty"`
	Sex        Sex         `json:"sex,omitempty"`
	Contact    Contact     `json:"contact"`
	DeceasedAt time.Time   `json:"deceased_at"`
	Allergies  []Allergy   `json:"allergies,omitempty"`
	Conditions []Condition `json:"conditions,omitempty"`
	Registered bool        `json:"registered"`
	Deceased   bool        `json:"deceased"`
	Erased     bool        `json:"erased"`
}

func encodeSnapshot(p *Patient) ([]byte, error) {
	s := snapshot{Version: p.Version, MRN: p.MRN, Name: p.Name, BirthDate: p.BirthDate, Sex: p.Sex, Contact: p.Contact,
		DeceasedAt: p.DeceasedAt, Registered: p.registered, Deceased: p.deceased, Erased: p.erased}
	for _, a := range p.Allergies {
		s.Allergies = append(s.Allergies, a)
	}
	for _, c := range p.Conditions {
		s.Conditions = append(s.Conditions, c)
	}
	return json.Marshal(s)
}

func decodeSnapshot(id uuid.UUID, state []byte) (*Patient, error) {
	var s snapshot
	if err := json.Unmarshal(state, &s); err != nil {
		return nil, err
	}
	p := newPatient(id)
	p.Version, p.MRN, p.Name, p.BirthDate, p.Sex, p.Contact = s.Version, s.MRN, s.Name, s.BirthDate, s.Sex, s.Contact
	p.DeceasedAt, p.registered, p.deceased, p.erased = s.DeceasedAt, s.Registered, s.Deceased, s.Erased
	for _, a := range s.Allergies {
		p.Allergies[a.ID] = a
	}
	for _, c := range s.Conditions {
		p.Conditions[c.ID] = c
	}
	return p, nil
}
