package patient

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

// The clinic's clock in every decision test: noon UTC, when it is already
// tomorrow (03-15) in UTC+14.
var now = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)

var (
	patientID     = uuid.MustParse("6f1c2a3e-0000-4000-8000-000000000001")
	allergyID     = uuid.MustParse("6f1c2a3e-0000-4000-8000-000000000002")
	conditionID   = uuid.MustParse("6f1c2a3e-0000-4000-8000-000000000003")
	observationID = uuid.MustParse("6f1c2a3e-0000-4000-8000-000000000004")
	encounterID   = uuid.MustParse("6f1c2a3e-0000-4000-8000-000000000005")
)

// PHI-looking values the tests feed in; no error may echo any of them.
const (
	family   = "Quixleworth"
	given    = "Ysolde"
	birth    = "1961-07-23"
	phone    = "+44 20 7946 0958"
	email    = "ysolde.q@example.org"
	reaction = "hives and wheezing within minutes"
)

var penicillin = Coding{Code: "7980", Display: "Penicillin G", System: RxNorm}

func registration() PatientRegistered {
	return PatientRegistered{
		MRN:       "MRN-0042",
		Name:      HumanName{Family: family, Given: []string{given}},
		BirthDate: birth,
		Sex:       SexFemale,
		Contact:   Contact{Phone: phone, Email: email},
	}
}

func register() RegisterPatient {
	r := registration()
	return RegisterPatient{PatientID: patientID, MRN: r.MRN, Name: r.Name, BirthDate: r.BirthDate, Sex: r.Sex, Contact: r.Contact}
}

func with[T any](v T, change func(*T)) T {
	change(&v)
	return v
}

func ptr[T any](v T) *T { return &v }

func allergyRecorded() AllergyRecorded {
	return AllergyRecorded{AllergyID: allergyID, Substance: penicillin, Criticality: CriticalityHigh, Reaction: reaction}
}

func recordAllergy() RecordAllergy {
	return RecordAllergy{PatientID: patientID, AllergyID: allergyID, Substance: penicillin, Criticality: CriticalityHigh, Reaction: reaction}
}

func recordObservation() RecordObservation {
	return RecordObservation{
		PatientID: patientID, ObservationID: observationID, Code: "8867-4", System: LOINC,
		Value: ptr(72.0), Unit: "/min", EffectiveAt: "2025-03-14T11:15:00+02:00", EncounterID: ptr(encounterID),
	}
}

type scenario struct {
	name   string
	given  []Event
	when   command
	then   []Event
	code   string   // expected error code, "" for success
	fields []string // for EINVALID: the fields named, in order
}

func TestDecide(t *testing.T) {
	t.Parallel()
	reg := registration()
	died := PatientDeceased{DeceasedAt: time.Date(2025, 1, 2, 3, 4, 0, 0, time.UTC)}
	erased := PatientErased{ErasedAt: now}
	scenarios := []scenario{
		{name: "register a new patient", when: register(), then: []Event{reg}},
		{name: "register twice", given: []Event{reg}, when: register(), code: chartstream.ECONFLICT},
		{name: "register without mrn, family name or valid birth date",
			when: with(register(), func(c *RegisterPatient) { c.MRN, c.Name.Family, c.BirthDate = "", "", "23/07/1961" }),
			code: chartstream.EINVALID, fields: []string{"mrn", "name.family", "birth_date"}},
		{name: "register with mrn containing spaces", when: with(register(), func(c *RegisterPatient) { c.MRN = "MRN 42" }),
			code: chartstream.EINVALID, fields: []string{"mrn"}},
		{name: "register born tomorrow somewhere on earth", when: with(register(), func(c *RegisterPatient) { c.BirthDate = "2025-03-15" }),
			then: []Event{with(reg, func(e *PatientRegistered) { e.BirthDate = "2025-03-15" })}},
		{name: "register born in the future", when: with(register(), func(c *RegisterPatient) { c.BirthDate = "2025-03-16" }),
			code: chartstream.EINVALID, fields: []string{"birth_date"}},
		{name: "register born too long ago", when: with(register(), func(c *RegisterPatient) { c.BirthDate = "1850-01-01" }),
			code: chartstream.EINVALID, fields: []string{"birth_date"}},
		{name: "register with unknown sex code and bad contact",
			when: with(register(), func(c *RegisterPatient) {
				c.Sex, c.Contact = "f", Contact{Phone: "call " + phone, Email: given + " <" + email + ">"}
			}),
			code: chartstream.EINVALID, fields: []string{"sex", "contact.phone", "contact.email"}},
		{name: "register with an impossible date", when: with(register(), func(c *RegisterPatient) { c.BirthDate = "1961-02-30" }),
			code: chartstream.EINVALID, fields: []string{"birth_date"}},

		{name: "update demographics of an unknown patient", when: UpdateDemographics{PatientID: patientID, Sex: ptr(SexOther)},
			code: chartstream.ENOTFOUND},
		{name: "update nothing", given: []Event{reg}, when: UpdateDemographics{PatientID: patientID}, code: chartstream.EINVALID},
		{name: "update sex and contact", given: []Event{reg},
			when: UpdateDemographics{PatientID: patientID, Sex: ptr(SexOther), Contact: &Contact{}},
			then: []Event{DemographicsUpdated{Sex: ptr(SexOther), Contact: &Contact{}}}},
		{name: "update birth date to after death", given: []Event{reg, died},
			when: UpdateDemographics{PatientID: patientID, BirthDate: ptr("2025-01-04")}, code: chartstream.EUNPROCESSABLE},

		{name: "record an allergy", given: []Event{reg}, when: recordAllergy(), then: []Event{allergyRecorded()}},
		{name: "record an allergy for an unknown patient", when: recordAllergy(), code: chartstream.ENOTFOUND},
		{name: "record an allergy twice", given: []Event{reg, allergyRecorded()}, when: recordAllergy(), code: chartstream.ECONFLICT},
		{name: "record a second active allergy to the same substance", given: []Event{reg, allergyRecorded()},
			when: with(recordAllergy(), func(c *RecordAllergy) { c.AllergyID = uuid.New() }), code: chartstream.ECONFLICT},
		{name: "record an allergy again after refuting it", given: []Event{reg, allergyRecorded(), AllergyRefuted{AllergyID: allergyID}},
			when: with(recordAllergy(), func(c *RecordAllergy) { c.AllergyID = conditionID }),
			then: []Event{with(allergyRecorded(), func(e *AllergyRecorded) { e.AllergyID = conditionID })}},
		{name: "record an allergy with unknown criticality and no substance", given: []Event{reg},
			when: with(recordAllergy(), func(c *RecordAllergy) { c.Criticality, c.Substance = "severe", Coding{} }),
			code: chartstream.EINVALID, fields: []string{"substance.code", "substance.system", "criticality"}},
		{name: "record an allergy without id", given: []Event{reg},
			when: with(recordAllergy(), func(c *RecordAllergy) { c.AllergyID = uuid.Nil }), code: chartstream.EINVALID, fields: []string{"allergy_id"}},

		{name: "refute an allergy", given: []Event{reg, allergyRecorded()}, when: RefuteAllergy{PatientID: patientID, AllergyID: allergyID},
			then: []Event{AllergyRefuted{AllergyID: allergyID}}},
		{name: "refute an allergy not on record", given: []Event{reg}, when: RefuteAllergy{PatientID: patientID, AllergyID: allergyID},
			code: chartstream.ENOTFOUND},
		{name: "refute an allergy twice", given: []Event{reg, allergyRecorded(), AllergyRefuted{AllergyID: allergyID}},
			when: RefuteAllergy{PatientID: patientID, AllergyID: allergyID}, code: chartstream.ECONFLICT},

		{name: "diagnose a condition", given: []Event{reg},
			when: DiagnoseCondition{PatientID: patientID, ConditionID: conditionID, Code: "44054006", System: "http://snomed.info/sct", Onset: "2024-11-02"},
			then: []Event{ConditionDiagnosed{ConditionID: conditionID, Code: "44054006", System: "http://snomed.info/sct", Onset: "2024-11-02"}}},
		{name: "diagnose a condition with onset in the future", given: []Event{reg},
			when: DiagnoseCondition{PatientID: patientID, ConditionID: conditionID, Code: "44054006", System: "http://snomed.info/sct", Onset: "2026-01-01"},
			code: chartstream.EINVALID, fields: []string{"onset"}},
		{name: "resolve a condition", given: []Event{reg, ConditionDiagnosed{ConditionID: conditionID}},
			when: ResolveCondition{PatientID: patientID, ConditionID: conditionID}, then: []Event{ConditionResolved{ConditionID: conditionID}}},
		{name: "resolve a condition twice", given: []Event{reg, ConditionDiagnosed{ConditionID: conditionID}, ConditionResolved{ConditionID: conditionID}},
			when: ResolveCondition{PatientID: patientID, ConditionID: conditionID}, code: chartstream.ECONFLICT},
		{name: "resolve a condition never diagnosed", given: []Event{reg},
			when: ResolveCondition{PatientID: patientID, ConditionID: conditionID}, code: chartstream.ENOTFOUND},

		{name: "record a heart rate, effective time kept in UTC", given: []Event{reg}, when: recordObservation(),
			then: []Event{ObservationRecorded{ObservationID: observationID, Code: "8867-4", System: LOINC, Value: ptr(72.0), Unit: "/min",
				EffectiveAt: time.Date(2025, 3, 14, 9, 15, 0, 0, time.UTC), EncounterID: ptr(encounterID)}}},
		{name: "record a coded result after death", given: []Event{reg, died},
			when: with(recordObservation(), func(c *RecordObservation) { c.Value, c.Unit, c.ValueCode, c.EncounterID = nil, "", "LA6576-8", nil }),
			then: []Event{ObservationRecorded{ObservationID: observationID, Code: "8867-4", System: LOINC, ValueCode: "LA6576-8",
				EffectiveAt: time.Date(2025, 3, 14, 9, 15, 0, 0, time.UTC)}}},
		{name: "record both a number and a code", given: []Event{reg},
			when: with(recordObservation(), func(c *RecordObservation) { c.ValueCode = "LA6576-8" }), code: chartstream.EINVALID, fields: []string{"value"}},
		{name: "record neither a number nor a code", given: []Event{reg},
			when: with(recordObservation(), func(c *RecordObservation) { c.Value = nil }), code: chartstream.EINVALID, fields: []string{"value"}},
		{name: "record a number without unit, not LOINC, in the future", given: []Event{reg},
			when: with(recordObservation(), func(c *RecordObservation) {
				c.Unit, c.System, c.EffectiveAt = "", "http://snomed.info/sct", "2025-03-14T12:30:00Z"
			}),
			code: chartstream.EINVALID, fields: []string{"system", "unit", "effective_at"}},
		{name: "record an observation with a bad time", given: []Event{reg},
			when: with(recordObservation(), func(c *RecordObservation) { c.EffectiveAt = "2025-03-14 09:15" }), code: chartstream.EINVALID, fields: []string{"effective_at"}},
		{name: "record an observation for an erased record", given: []Event{reg, PatientErased{}},
			when: recordObservation(), code: chartstream.EUNPROCESSABLE},
		{name: "record an observation for an unknown patient", when: recordObservation(), code: chartstream.ENOTFOUND},

		{name: "record a death", given: []Event{reg}, when: RecordDeath{PatientID: patientID, DeceasedAt: "2025-01-02T03:04:00Z"}, then: []Event{died}},
		{name: "record a death twice", given: []Event{reg, died}, when: RecordDeath{PatientID: patientID, DeceasedAt: "2025-01-02T03:04:00Z"},
			code: chartstream.ECONFLICT},
		{name: "record a death before birth", given: []Event{reg}, when: RecordDeath{PatientID: patientID, DeceasedAt: "1961-07-21T23:00:00Z"},
			code: chartstream.EUNPROCESSABLE},
		{name: "record a death on the day of birth, east of UTC", given: []Event{reg},
			when: RecordDeath{PatientID: patientID, DeceasedAt: "1961-07-23T02:00:00+10:00"},
			then: []Event{PatientDeceased{DeceasedAt: time.Date(1961, 7, 22, 16, 0, 0, 0, time.UTC)}}},
		{name: "record a death in the future", given: []Event{reg}, when: RecordDeath{PatientID: patientID, DeceasedAt: "2025-03-15T00:00:00Z"},
			code: chartstream.EINVALID, fields: []string{"deceased_at"}},

		{name: "erase a record", given: []Event{reg}, when: ErasePatient{PatientID: patientID}, then: []Event{erased}},
		{name: "erase an erased record again", given: []Event{reg, erased}, when: ErasePatient{PatientID: patientID}},
		{name: "erase an unknown patient", when: ErasePatient{PatientID: patientID}, code: chartstream.ENOTFOUND},
		{name: "record an observation after erasure", given: []Event{reg, erased}, when: recordObservation(), code: chartstream.EUNPROCESSABLE},
		{name: "update demographics after erasure", given: []Event{reg, erased},
			when: UpdateDemographics{PatientID: patientID, Sex: ptr(SexOther)}, code: chartstream.EUNPROCESSABLE},
		{name: "record a death after erasure", given: []Event{reg, erased},
			when: RecordDeath{PatientID: patientID, DeceasedAt: "2025-01-02T03:04:00Z"}, code: chartstream.EUNPROCESSABLE},
		{name: "register an erased patient again", given: []Event{reg, erased}, when: register(), code: chartstream.ECONFLICT},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			got, err := sc.when.decide(Replay(patientID, sc.given...), now)
			assertOutcome(t, got, err, sc)
		})
	}
}

func assertOutcome(t *testing.T, got []Event, err error, sc scenario) {
	t.Helper()
	if code := chartstream.ErrorCode(err); code != sc.code {
		t.Fatalf("error code = %q (%v), want %q", code, err, sc.code)
	}
	if !reflect.DeepEqual(got, sc.then) {
		t.Fatalf("events =\n%+v\nwant\n%+v", got, sc.then)
	}
	if err == nil {
		return
	}
	var e *chartstream.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not a *chartstream.Error", err)
	}
	var names []string
	for _, f := range e.Fields {
		names = append(names, f.Field)
	}
	if sc.fields != nil && !slices.Equal(names, sc.fields) {
		t.Errorf("fields = %v, want %v", names, sc.fields)
	}
	text := err.Error()
	for _, f := range e.Fields {
		text += " " + f.Reason
	}
	for _, phi := range []string{family, given, birth, phone, email, reaction, "MRN-0042", "1961"} {
		if strings.Contains(text, phi) {
			t.Errorf("error %q echoes input %q", text, phi)
		}
	}
}
