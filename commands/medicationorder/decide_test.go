package medicationorder

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
	patientID = uuid.MustParse("8b3c4d5e-0000-4000-8000-000000000001")
	orderID   = uuid.MustParse("8b3c4d5e-0000-4000-8000-000000000002")
	allergyID = uuid.MustParse("8b3c4d5e-0000-4000-8000-000000000003")
)

var (
	amoxicillin = patient.Coding{Code: "723", Display: "amoxicillin", System: patient.RxNorm}
	registered  = patient.PatientRegistered{MRN: "MRN-9", Name: patient.HumanName{Family: "Test"}, BirthDate: "1980-05-05", Sex: patient.SexFemale}
	allergic    = patient.AllergyRecorded{AllergyID: allergyID, Substance: amoxicillin, Criticality: patient.CriticalityHigh}
	refuted     = patient.AllergyRefuted{AllergyID: allergyID}
	deceased    = patient.PatientDeceased{DeceasedAt: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)}
	// A SNOMED-coded allergy with RxNorm's code for amoxicillin is about
	// another substance and must not block.
	otherSystem = patient.AllergyRecorded{AllergyID: allergyID, Substance: patient.Coding{Code: "723", System: "http://snomed.info/sct"}, Criticality: patient.CriticalityLow}
)

func prescribe() PrescribeMedication {
	return PrescribeMedication{OrderID: orderID, PatientID: patientID, Medication: amoxicillin,
		Dose: "500 mg", Route: "oral", Frequency: "every 8 hours", Prescriber: "dr-204"}
}

func prescribed() MedicationPrescribed {
	return MedicationPrescribed{PatientID: patientID, Medication: amoxicillin, Dose: "500 mg", Route: "oral", Frequency: "every 8 hours", Prescriber: "dr-204"}
}

func overridden(reason string) func(*PrescribeMedication) {
	return func(c *PrescribeMedication) { c.Override = &Override{Reason: reason} }
}

func TestDecide(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		givenPatient []patient.Event
		given        []Event
		when         func(*MedicationOrder, *patient.Patient) ([]Event, error)
		then         []Event
		code         string
	}{
		{name: "prescribe", givenPatient: []patient.Event{registered}, when: prescribing(), then: []Event{prescribed()}},
		{name: "prescribe despite a refuted allergy", givenPatient: []patient.Event{registered, allergic, refuted},
			when: prescribing(), then: []Event{prescribed()}},
		{name: "prescribe despite an allergy coded in another system", givenPatient: []patient.Event{registered, otherSystem},
			when: prescribing(), then: []Event{prescribed()}},
		{name: "prescribe a medication the patient is allergic to", givenPatient: []patient.Event{registered, allergic},
			when: prescribing(), code: chartstream.EUNPROCESSABLE},
		{name: "prescribe it with an override", givenPatient: []patient.Event{registered, allergic},
			when: prescribing(overridden("benefit outweighs risk; desensitised")),
			then: []Event{func() Event {
				e := prescribed()
				e.Override = &Override{Reason: "benefit outweighs risk; desensitised"}
				return e
			}()}},
		{name: "prescribe it with an override without reason", givenPatient: []patient.Event{registered, allergic},
			when: prescribing(overridden("  ")), code: chartstream.EINVALID},
		{name: "prescribe for a deceased patient", givenPatient: []patient.Event{registered, deceased},
			when: prescribing(), code: chartstream.EUNPROCESSABLE},
		{name: "prescribe for an unregistered patient", when: prescribing(), code: chartstream.ENOTFOUND},
		{name: "prescribe twice", givenPatient: []patient.Event{registered}, given: []Event{prescribed()},
			when: prescribing(), code: chartstream.ECONFLICT},
		{name: "prescribe a medication not coded in RxNorm", givenPatient: []patient.Event{registered},
			when: prescribing(func(c *PrescribeMedication) { c.Medication.System = "http://snomed.info/sct" }), code: chartstream.EINVALID},
		{name: "prescribe without dose", givenPatient: []patient.Event{registered},
			when: prescribing(func(c *PrescribeMedication) { c.Dose = "" }), code: chartstream.EINVALID},

		{name: "prescribe for an erased patient", givenPatient: []patient.Event{registered, patient.PatientErased{}},
			when: prescribing(), code: chartstream.EUNPROCESSABLE},
		{name: "discontinue for an erased patient", givenPatient: []patient.Event{registered, patient.PatientErased{}}, given: []Event{prescribed()},
			when: discontinuing(""), code: chartstream.EUNPROCESSABLE},
		{name: "discontinue", givenPatient: []patient.Event{registered}, given: []Event{prescribed()}, when: discontinuing("rash"),
			then: []Event{MedicationDiscontinued{PatientID: patientID, Reason: "rash"}}},
		{name: "discontinue twice", givenPatient: []patient.Event{registered}, given: []Event{prescribed(), MedicationDiscontinued{PatientID: patientID}},
			when: discontinuing(""), code: chartstream.ECONFLICT},
		{name: "discontinue an order never prescribed", when: discontinuing(""), code: chartstream.ENOTFOUND},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.when(Replay(orderID, tt.given...), patient.Replay(patientID, tt.givenPatient...))
			if code := chartstream.ErrorCode(err); code != tt.code {
				t.Fatalf("error code = %q (%v), want %q", code, err, tt.code)
			}
			if !reflect.DeepEqual(got, tt.then) {
				t.Fatalf("events = %+v, want %+v", got, tt.then)
			}
		})
	}
}

func prescribing(changes ...func(*PrescribeMedication)) func(*MedicationOrder, *patient.Patient) ([]Event, error) {
	return func(o *MedicationOrder, p *patient.Patient) ([]Event, error) {
		c := prescribe()
		for _, change := range changes {
			change(&c)
		}
		return c.decide(o, p)
	}
}

func discontinuing(reason string) func(*MedicationOrder, *patient.Patient) ([]Event, error) {
	return func(o *MedicationOrder, p *patient.Patient) ([]Event, error) {
		return DiscontinueMedication{OrderID: orderID, Reason: reason}.decide(o, p)
	}
}

func TestEventSpecsAgreeWithPayloads(t *testing.T) {
	t.Parallel()
	withOverride := prescribed()
	withOverride.Override = &Override{Reason: "no alternative"}
	samples := []Event{withOverride, MedicationDiscontinued{PatientID: patientID, Reason: "rash"}}
	if err := decision.VerifySpecs(EventSpecs(), Decode, samples...); err != nil {
		t.Fatal(err)
	}
}
