package patient

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/decision"
)

// StreamType is the aggregate type of patient streams; a patient's stream
// id is the patient id.
const StreamType = "patient"

// Event type names. They are stored with every event and never change: a new
// payload shape gets a new schema version and an upcaster, not a new name.
const (
	TypeRegistered          = "patient.registered"
	TypeDemographicsUpdated = "patient.demographics_updated"
	TypeAllergyRecorded     = "patient.allergy_recorded"
	TypeAllergyRefuted      = "patient.allergy_refuted"
	TypeConditionDiagnosed  = "patient.condition_diagnosed"
	TypeConditionResolved   = "patient.condition_resolved"
	TypeObservationRecorded = "patient.observation_recorded"
	TypeDeceased            = "patient.deceased"
	TypeErased              = "patient.erased"
)

// schemaVersion is the payload version of every patient event: all are
// still at their first shape. A type whose shape changes gets its own
// constant and an upcaster in the event store.
const schemaVersion = 1

// MRNScope is the unique-claim scope under which a tenant's medical record
// numbers are reserved.
const MRNScope = "patient.mrn"

// Code systems the clinic's data is coded in.
const (
	// LOINC codes observations.
	LOINC = "http://loinc.org"
	// RxNorm codes medications, and allergies to them.
	RxNorm = "http://www.nlm.nih.gov/research/umls/rxnorm"
)

// Sex is administrative sex as recorded at registration.
type Sex string

// The administrative sexes.
const (
	SexFemale  Sex = "female"
	SexMale    Sex = "male"
	SexOther   Sex = "other"
	SexUnknown Sex = "unknown"
)

// Criticality is how severe a reaction to an allergen could be.
type Criticality string

// The criticalities of an allergy.
const (
	CriticalityLow            Criticality = "low"
	CriticalityHigh           Criticality = "high"
	CriticalityUnableToAssess Criticality = "unable-to-assess"
)

// HumanName is a patient's name.
type HumanName struct {
	Family string   `json:"family"`
	Given  []string `json:"given,omitempty"`
}

// Contact is how to reach a patient.
type Contact struct {
	Phone string `json:"phone,omitempty"`
	Email string `json:"email,omitempty"`
}

// Coding is a concept from a code system, such as an RxNorm substance.
type Coding struct {
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
	System  string `json:"system"`
}

// Event is a patient event payload.
type Event interface {
	// EventType returns the event's stable type name.
	EventType() string
}

// PatientRegistered says a patient was admitted to the tenant's patient
// index under a medical record number unique within the tenant.
type PatientRegistered struct {
	MRN       string    `json:"mrn"`
	Name      HumanName `json:"name"`
	BirthDate string    `json:"birth_date"` // YYYY-MM-DD
	Sex       Sex       `json:"sex"`
	Contact   Contact   `json:"contact"`
}

// DemographicsUpdated says some of a patient's demographics were corrected
// or changed; absent fields are unchanged.
type DemographicsUpdated struct {
	Name      *HumanName `json:"name,omitempty"`
	BirthDate *string    `json:"birth_date,omitempty"`
	Sex       *Sex       `json:"sex,omitempty"`
	Contact   *Contact   `json:"contact,omitempty"`
}

// AllergyRecorded says the patient is known to be allergic to a substance.
type AllergyRecorded struct {
	AllergyID   uuid.UUID   `json:"allergy_id"`
	Substance   Coding      `json:"substance"`
	Criticality Criticality `json:"criticality"`
	Reaction    string      `json:"reaction,omitempty"`
}

// AllergyRefuted says a recorded allergy turned out not to exist.
type AllergyRefuted struct {
	AllergyID uuid.UUID `json:"allergy_id"`
}

// ConditionDiagnosed says a condition was diagnosed.
type ConditionDiagnosed struct {
	ConditionID uuid.UUID `json:"condition_id"`
	Code        string    `json:"code"`
	System      string    `json:"system"`
	Display     string    `json:"display,omitempty"`
	Onset       string    `json:"onset,omitempty"` // YYYY-MM-DD
}

// ConditionResolved says an active condition resolved.
type ConditionResolved struct {
	ConditionID uuid.UUID `json:"condition_id"`
}

// ObservationRecorded says a LOINC-coded observation was made: either a
// number with a UCUM unit or a coded value.
type ObservationRecorded struct {
	ObservationID uuid.UUID  `json:"observation_id"`
	Code          string     `json:"code"`
	System        string     `json:"system"`
	Value         *float64   `json:"value,omitempty"`
	Unit          string     `json:"unit,omitempty"`
	ValueCode     string     `json:"value_code,omitempty"`
	EffectiveAt   time.Time  `json:"effective_at"`
	EncounterID   *uuid.UUID `json:"encounter_id,omitempty"`
}

// PatientDeceased says the patient died.
type PatientDeceased struct {
	DeceasedAt time.Time `json:"deceased_at"`
}

// PatientErased says the patient's record was erased on request: the
// patient's data key was destroyed (crypto-shredding), so the PHI in every
// earlier event reads as erased, and no further command may act on the
// patient. It carries no PHI itself.
type PatientErased struct {
	ErasedAt time.Time `json:"erased_at"`
}

// EventType implements Event.
func (PatientRegistered) EventType() string { return TypeRegistered }

// EventType implements Event.
func (PatientErased) EventType() string { return TypeErased }

// EventType implements Event.
func (DemographicsUpdated) EventType() string { return TypeDemographicsUpdated }

// EventType implements Event.
func (AllergyRecorded) EventType() string { return TypeAllergyRecorded }

// EventType implements Event.
func (AllergyRefuted) EventType() string { return TypeAllergyRefuted }

// EventType implements Event.
func (ConditionDiagnosed) EventType() string { return TypeConditionDiagnosed }

// EventType implements Event.
func (ConditionResolved) EventType() string { return TypeConditionResolved }

// EventType implements Event.
func (ObservationRecorded) EventType() string { return TypeObservationRecorded }

// EventType implements Event.
func (PatientDeceased) EventType() string { return TypeDeceased }

// Claims reserves the MRN, so that the event store refuses a second patient
// with the same MRN in the tenant, atomically with the registration.
func (e PatientRegistered) Claims() []chartstream.UniqueClaim {
	return []chartstream.UniqueClaim{{Scope: MRNScope, Value: e.MRN}}
}

// EventSpecs declares every patient event type to the event store. PHI lists
// names, birth and death dates, contact details, the MRN (an identifier
// under HIPAA, already stored only hashed in its claim) and free text; the
// patient stream is its own data subject.
func EventSpecs() []chartstream.EventSpec {
	return []chartstream.EventSpec{
		{Type: TypeRegistered, SchemaVersion: schemaVersion, PHI: []string{"mrn", "name", "birth_date", "contact"}, Payload: PatientRegistered{}},
		{Type: TypeDemographicsUpdated, SchemaVersion: schemaVersion, PHI: []string{"name", "birth_date", "contact"}, Payload: DemographicsUpdated{}},
		{Type: TypeAllergyRecorded, SchemaVersion: schemaVersion, PHI: []string{"reaction"}, Payload: AllergyRecorded{}},
		{Type: TypeAllergyRefuted, SchemaVersion: schemaVersion, Payload: AllergyRefuted{}},
		{Type: TypeConditionDiagnosed, SchemaVersion: schemaVersion, Payload: ConditionDiagnosed{}},
		{Type: TypeConditionResolved, SchemaVersion: schemaVersion, Payload: ConditionResolved{}},
		{Type: TypeObservationRecorded, SchemaVersion: schemaVersion, Payload: ObservationRecorded{}},
		{Type: TypeDeceased, SchemaVersion: schemaVersion, PHI: []string{"deceased_at"}, Payload: PatientDeceased{}},
		{Type: TypeErased, SchemaVersion: schemaVersion, Payload: PatientErased{}},
	}
}

// Decode turns a stored patient event into its payload. Erased PHI fields
// decode as zero values. It fails for unknown types and schema versions.
func Decode(e chartstream.Event) (Event, error) {
	switch e.Type {
	case TypeRegistered:
		return decode[PatientRegistered](e)
	case TypeDemographicsUpdated:
		return decode[DemographicsUpdated](e)
	case TypeAllergyRecorded:
		return decode[AllergyRecorded](e)
	case TypeAllergyRefuted:
		return decode[AllergyRefuted](e)
	case TypeConditionDiagnosed:
		return decode[ConditionDiagnosed](e)
	case TypeConditionResolved:
		return decode[ConditionResolved](e)
	case TypeObservationRecorded:
		return decode[ObservationRecorded](e)
	case TypeDeceased:
		return decode[PatientDeceased](e)
	case TypeErased:
		return decode[PatientErased](e)
	}
	return nil, fmt.Errorf("patient stream %s: unknown event type %q", e.Stream.ID, e.Type)
}

func decode[T Event](e chartstream.Event) (Event, error) {
	var payload T
	if err := decision.Unmarshal(e, schemaVersion, &payload); err != nil {
		return nil, err
	}
	return payload, nil
}
