// Package deid de-identifies clinical events under HIPAA's Safe Harbor
// method (45 CFR 164.514(b)(2)) for the CLINICAL_DEID stream that analytics
// consumers read. It does no I/O: the de-identifier worker (workers/)
// opens each event's PHI, looks up the tenant's pseudonym key and whether
// the patient was erased, and hands them here.
//
// Every event type has an explicit rule listing the payload fields it
// keeps and how; any other field, known or not, is dropped. The 18 Safe
// Harbor identifiers are handled so:
//
//   - names, contact details (phone, fax, email, URLs, IP addresses),
//     medical record, health plan, account, licence, vehicle and device
//     numbers, biometric data, photographs and free text are never on an
//     allow-list, so they are dropped;
//   - the ids of patients, encounters, orders, observations, allergies,
//     conditions and events become keyed pseudonyms (HMAC-SHA-256 under a
//     per-tenant key): stable within a tenant, unlinkable across tenants,
//     and not reversible without the key;
//   - dates keep only their year (Safe Harbor), or, when configured, are
//     shifted by a per-patient keyed offset of days (which keeps intervals
//     but is Expert Determination, not Safe Harbor);
//   - a birth date becomes an age in years, aggregated to "90+" above 89,
//     with the birth year (or shifted birth date) only below 90;
//   - a ZIP code keeps its first three digits, or 000 where those three
//     digits cover fewer than 20,000 people.
package deid

import (
	"github.com/chartstream/chartstream/commands/encounter"
	"github.com/chartstream/chartstream/commands/medicationorder"
	"github.com/chartstream/chartstream/commands/patient"
)

// PatientRef says where an event names the patient it is about.
type PatientRef int

const (
	// PatientIsStream: the event's stream is the patient's.
	PatientIsStream PatientRef = iota + 1
	// PatientInField: the payload's patient_id field.
	PatientInField
	// PatientOfStream: the patient named by the stream's first event
	// (an encounter's later events do not repeat it).
	PatientOfStream
)

// PatientField is the payload field of PatientInField and PatientOfStream.
const PatientField = "patient_id"

// Kind is how a kept field is de-identified.
type Kind int

// The kinds of kept fields.
const (
	// Pseudonym replaces a UUID with its keyed pseudonym (Field.Entity).
	Pseudonym Kind = iota + 1
	// Code keeps a terminology code (letters, digits, dots and dashes).
	Code
	// System keeps a code system's URI when it is a known terminology.
	System
	// Enum keeps one of Field.Values.
	Enum
	// Number keeps a JSON number.
	Number
	// Unit keeps a UCUM unit.
	Unit
	// Label replaces a label clinicians type (a location) with its keyed
	// pseudonym (Field.Entity): consumers can group by it, never read it,
	// since nothing stops a name or an address being typed there.
	Label
	// Date keeps a date or timestamp's year, or shifts it.
	Date
	// BirthDate becomes an age ("90+" above 89) and, below 90, the birth
	// year (or the shifted birth date).
	BirthDate
	// ZIP keeps a ZIP code's first three digits, or 000 (see ZIP3).
	ZIP
	// Present becomes true when the field is there and not null: whether
	// an allergy alert was overridden, never why.
	Present
)

// Field is one field an event type keeps.
type Field struct {
	// Path is the field in the source payload, dotted for nested objects
	// ("substance.code").
	Path string
	// Out is its name in the de-identified payload, dotted likewise.
	// Default Path.
	Out string
	Kind
	// Entity names what a Pseudonym or a Label identifies ("patient",
	// "location"): the same id or label gets the same pseudonym wherever
	// it appears.
	Entity string
	// Values are Enum's allowed values.
	Values []string
}

// Rule is how one event type is de-identified: its patient, and the only
// fields it keeps.
type Rule struct {
	Type string
	// SchemaVersion is the payload version the rule reads: the event
	// type's current one, which the event store upcasts every event to.
	SchemaVersion int
	// Patient says where the event names its patient; zero when it
	// names none.
	Patient PatientRef
	Fields  []Field
	// Erasure marks the event that says a patient's record was erased:
	// consumers should drop what they hold under its patient pseudonym.
	Erasure bool
}

// Entities that pseudonyms identify; each keys its own pseudonyms.
const (
	EntityPatient     = "patient"
	EntityEncounter   = "encounter"
	EntityOrder       = "medication_order"
	EntityObservation = "observation"
	EntityAllergy     = "allergy"
	EntityCondition   = "condition"
	EntityEvent       = "event"
	// EntityLocation keys the pseudonyms of locations (Label fields).
	EntityLocation = "location"
)

// streamEntities maps a stream type to the entity its ids identify.
var streamEntities = map[string]string{
	patient.StreamType:         EntityPatient,
	encounter.StreamType:       EntityEncounter,
	medicationorder.StreamType: EntityOrder,
}

// sexes are the administrative sexes patient events record.
var sexes = []string{string(patient.SexFemale), string(patient.SexMale), string(patient.SexOther), string(patient.SexUnknown)}

// Rules returns the rule of every clinical event type. A test fails when
// a registered event type has none, or a rule names a type not registered.
func Rules() []Rule {
	demographics := []Field{
		{Path: "birth_date", Kind: BirthDate},
		{Path: "sex", Kind: Enum, Values: sexes},
		// The API records no address yet; an event that carries one
		// (an import, a later schema) keeps only this much of it.
		{Path: "address.postal_code", Out: "address.zip3", Kind: ZIP},
		{Path: "address.state", Kind: Enum, Values: usStates},
	}
	coding := func(path string) []Field {
		return []Field{{Path: path + ".code", Kind: Code}, {Path: path + ".system", Kind: System}}
	}
	return []Rule{
		{Type: patient.TypeRegistered, Patient: PatientIsStream, Fields: demographics},
		{Type: patient.TypeDemographicsUpdated, Patient: PatientIsStream, Fields: demographics},
		{Type: patient.TypeAllergyRecorded, Patient: PatientIsStream, Fields: append([]Field{
			{Path: "allergy_id", Kind: Pseudonym, Entity: EntityAllergy},
			{Path: "criticality", Kind: Enum, Values: []string{string(patient.CriticalityLow), string(patient.CriticalityHigh), string(patient.CriticalityUnableToAssess)}},
		}, coding("substance")...)},
		{Type: patient.TypeAllergyRefuted, Patient: PatientIsStream, Fields: []Field{{Path: "allergy_id", Kind: Pseudonym, Entity: EntityAllergy}}},
		{Type: patient.TypeConditionDiagnosed, Patient: PatientIsStream, Fields: []Field{
			{Path: "condition_id", Kind: Pseudonym, Entity: EntityCondition},
			{Path: "code", Kind: Code}, {Path: "system", Kind: System},
			{Path: "onset", Kind: Date},
		}},
		{Type: patient.TypeConditionResolved, Patient: PatientIsStream, Fields: []Field{{Path: "condition_id", Kind: Pseudonym, Entity: EntityCondition}}},
		{Type: patient.TypeObservationRecorded, Patient: PatientIsStream, Fields: []Field{
			{Path: "observation_id", Kind: Pseudonym, Entity: EntityObservation},
			{Path: "code", Kind: Code}, {Path: "system", Kind: System},
			{Path: "value", Kind: Number}, {Path: "unit", Kind: Unit}, {Path: "value_code", Kind: Code},
			{Path: "effective_at", Kind: Date},
			{Path: "encounter_id", Kind: Pseudonym, Entity: EntityEncounter},
		}},
		{Type: patient.TypeDeceased, Patient: PatientIsStream, Fields: []Field{{Path: "deceased_at", Kind: Date}}},
		{Type: patient.TypeErased, Patient: PatientIsStream, Erasure: true, Fields: []Field{{Path: "erased_at", Kind: Date}}},
		{Type: encounter.TypeStarted, Patient: PatientInField, Fields: []Field{
			{Path: PatientField, Kind: Pseudonym, Entity: EntityPatient},
			{Path: "class", Kind: Enum, Values: []string{string(encounter.ClassInpatient), string(encounter.ClassOutpatient), string(encounter.ClassEmergency)}},
			{Path: "location", Kind: Label, Entity: EntityLocation},
		}},
		{Type: encounter.TypePatientTransferred, Patient: PatientOfStream, Fields: []Field{{Path: "location", Kind: Label, Entity: EntityLocation}}},
		{Type: encounter.TypeDischarged, Patient: PatientOfStream},
		{Type: medicationorder.TypePrescribed, Patient: PatientInField, Fields: append([]Field{
			{Path: PatientField, Kind: Pseudonym, Entity: EntityPatient},
			{Path: "override", Out: "allergy_override", Kind: Present},
		}, coding("medication")...)},
		{Type: medicationorder.TypeDiscontinued, Patient: PatientInField, Fields: []Field{{Path: PatientField, Kind: Pseudonym, Entity: EntityPatient}}},
	}
}

// usStates are the two-letter codes of US states and territories: a state
// is the smallest geographic unit Safe Harbor lets through.
var usStates = []string{
	"AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY",
	"LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH",
	"OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY",
	"AS", "GU", "MP", "PR", "VI",
}
