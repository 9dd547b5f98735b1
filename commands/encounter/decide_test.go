package encounter

import (
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/decision"
	"github.com/chartstream/chartstream/commands/patient"
)

var (
	patientID   = uuid.MustParse("7a2b3c4d-0000-4000-8000-000000000001")
	encounterID = uuid.MustParse("7a2b3c4d-0000-4000-8000-000000000002")
)

const reason = "chest pain radiating to the left arm"

var (
	registered = patient.PatientRegistered{MRN: "MRN-7", Name: patient.HumanName{Family: "Test"}, BirthDate: "1970-01-01", Sex: patient.SexMale}
	deceased   = patient.PatientDeceased{DeceasedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	started    = EncounterStarted{PatientID: patientID, Class: ClassEmergency, Location: "ED bay 3", Reason: reason}
)

func start() StartEncounter {
	return StartEncounter{EncounterID: encounterID, PatientID: patientID, Class: ClassEmergency, Location: "ED bay 3", Reason: reason}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	alive := []patient.Event{registered}
	tests := []struct {
		name         string
		givenPatient []patient.Event
		given        []Event
		when         func(e *Encounter, p *patient.Patient) ([]Event, error)
		then         []Event
		code         string
	}{
		{name: "start an encounter", givenPatient: alive,
			when: func(e *Encounter, p *patient.Patient) ([]Event, error) { return start().decide(e, p) }, then: []Event{started}},
		{name: "start an encounter for a deceased patient", givenPatient: []patient.Event{registered, deceased},
			when: func(e *Encounter, p *patient.Patient) ([]Event, error) { return start().decide(e, p) }, code: chartstream.EUNPROCESSABLE},
		{name: "start an encounter for an unregistered patient",
			when: func(e *Encounter, p *patient.Patient) ([]Event, error) { return start().decide(e, p) }, code: chartstream.ENOTFOUND},
		{name: "start an encounter twice", givenPatient: alive, given: []Event{started},
			when: func(e *Encounter, p *patient.Patient) ([]Event, error) { return start().decide(e, p) }, code: chartstream.ECONFLICT},
		{name: "start an encounter of unknown class without location", givenPatient: alive,
			when: func(e *Encounter, p *patient.Patient) ([]Event, error) {
				c := start()
				c.Class, c.Location = "telepathic", ""
				return c.decide(e, p)
			}, code: chartstream.EINVALID},
		{name: "start an encounter without patient", givenPatient: alive,
			when: func(e *Encounter, p *patient.Patient) ([]Event, error) {
				c := start()
				c.PatientID = uuid.Nil
				return c.decide(e, p)
			}, code: chartstream.EINVALID},

		{name: "transfer", givenPatient: alive, given: []Event{started},
			when: func(e *Encounter, p *patient.Patient) ([]Event, error) {
				return TransferPatient{EncounterID: encounterID, Location: "Ward 7 bed 2"}.decide(e, p)
			}, then: []Event{PatientTransferred{Location: "Ward 7 bed 2"}}},
		{name: "transfer to where the patient is", givenPatient: alive, given: []Event{started, PatientTransferred{Location: "Ward 7 bed 2"}},
			when: func(e *Encounter, p *patient.Patient) ([]Event, error) {
				return TransferPatient{EncounterID: encounterID, Location: "Ward 7 bed 2"}.decide(e, p)
			}, code: chartstream.EUNPROCESSABLE},
		{name: "transfer after discharge", givenPatient: alive, given: []Event{started, EncounterDischarged{}},
			when: func(e *Encounter, p *patient.Patient) ([]Event, error) {
				return TransferPatient{EncounterID: encounterID, Location: "Ward 7"}.decide(e, p)
			}, code: chartstream.ECONFLICT},
		{name: "transfer in an encounter never started",
			when: func(e *Encounter, p *patient.Patient) ([]Event, error) {
				return TransferPatient{EncounterID: encounterID, Location: "Ward 7"}.decide(e, p)
			}, code: chartstream.ENOTFOUND},
		{name: "transfer nowhere", givenPatient: alive, given: []Event{started},
			when: func(e *Encounter, p *patient.Patient) ([]Event, error) {
				return TransferPatient{EncounterID: encounterID}.decide(e, p)
			}, code: chartstream.EINVALID},

		{name: "discharge", givenPatient: alive, given: []Event{started, PatientTransferred{Location: "Ward 7"}},
			when: func(e *Encounter, p *patient.Patient) ([]Event, error) {
				return DischargePatient{EncounterID: encounterID}.decide(e, p)
			},
			then: []Event{EncounterDischarged{}}},
		{name: "discharge twice", givenPatient: alive, given: []Event{started, EncounterDischarged{}},
			when: func(e *Encounter, p *patient.Patient) ([]Event, error) {
				return DischargePatient{EncounterID: encounterID}.decide(e, p)
			},
			code: chartstream.ECONFLICT},
		{name: "transfer an erased patient", givenPatient: []patient.Event{registered, patient.PatientErased{}}, given: []Event{started},
			when: func(e *Encounter, p *patient.Patient) ([]Event, error) {
				return TransferPatient{EncounterID: encounterID, Location: "Ward 7"}.decide(e, p)
			}, code: chartstream.EUNPROCESSABLE},
		{name: "discharge an erased patient", givenPatient: []patient.Event{registered, patient.PatientErased{}}, given: []Event{started},
			when: func(e *Encounter, p *patient.Patient) ([]Event, error) {
				return DischargePatient{EncounterID: encounterID}.decide(e, p)
			}, code: chartstream.EUNPROCESSABLE},
		{name: "start an encounter for an erased patient", givenPatient: []patient.Event{registered, patient.PatientErased{}},
			when: func(e *Encounter, p *patient.Patient) ([]Event, error) { return start().decide(e, p) }, code: chartstream.EUNPROCESSABLE},
		{name: "discharge an encounter never started",
			when: func(e *Encounter, p *patient.Patient) ([]Event, error) {
				return DischargePatient{EncounterID: encounterID}.decide(e, p)
			},
			code: chartstream.ENOTFOUND},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.when(Replay(encounterID, tt.given...), patient.Replay(patientID, tt.givenPatient...))
			if code := chartstream.ErrorCode(err); code != tt.code {
				t.Fatalf("error code = %q (%v), want %q", code, err, tt.code)
			}
			if !reflect.DeepEqual(got, tt.then) {
				t.Fatalf("events = %+v, want %+v", got, tt.then)
			}
		})
	}
}

func TestEventSpecsAgreeWithPayloads(t *testing.T) {
	t.Parallel()
	samples := []Event{started, PatientTransferred{Location: "Ward 7"}, EncounterDischarged{}}
	if err := decision.VerifySpecs(EventSpecs(), Decode, samples...); err != nil {
		t.Fatal(err)
	}
}
