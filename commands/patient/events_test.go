package patient

import (
	"testing"
	"time"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/decision"
)

// samples holds one fully populated payload of every patient event type.
func samples() []Event {
	return []Event{
		registration(),
		DemographicsUpdated{Name: &HumanName{Family: family}, BirthDate: ptr(birth), Sex: ptr(SexMale), Contact: &Contact{Email: email}},
		allergyRecorded(),
		AllergyRefuted{AllergyID: allergyID},
		ConditionDiagnosed{ConditionID: conditionID, Code: "44054006", System: "http://snomed.info/sct", Display: "Diabetes", Onset: "2024-11-02"},
		ConditionResolved{ConditionID: conditionID},
		ObservationRecorded{ObservationID: observationID, Code: "8867-4", System: LOINC, Value: ptr(72.0), Unit: "/min",
			EffectiveAt: now, EncounterID: ptr(encounterID)},
		PatientDeceased{DeceasedAt: now},
		PatientErased{ErasedAt: now},
	}
}

func TestEventSpecsAgreeWithPayloads(t *testing.T) {
	t.Parallel()
	if err := decision.VerifySpecs(EventSpecs(), Decode, samples()...); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeRefuses(t *testing.T) {
	t.Parallel()
	for name, e := range map[string]chartstream.Event{
		"unknown type":          {Type: "patient.teleported", SchemaVersion: 1, Payload: []byte(`{}`)},
		"newer schema version":  {Type: TypeRegistered, SchemaVersion: 2, Payload: []byte(`{}`)},
		"payload of wrong kind": {Type: TypeRegistered, SchemaVersion: 1, Payload: []byte(`{"name":"x"}`)},
	} {
		if _, err := Decode(e); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestErasedPHIDecodesAsZero(t *testing.T) {
	t.Parallel()
	// After crypto-shredding the store hands back PHI fields as null; the
	// patient must still rehydrate, and still count as registered and
	// deceased.
	erased := []chartstream.Event{
		{Type: TypeRegistered, SchemaVersion: 1, Version: 1, Payload: []byte(`{"mrn":null,"name":null,"birth_date":null,"sex":"female","contact":null}`)},
		{Type: TypeDeceased, SchemaVersion: 1, Version: 2, Payload: []byte(`{"deceased_at":null}`)},
	}
	p := newPatient(patientID)
	for _, e := range erased {
		payload, err := Decode(e)
		if err != nil {
			t.Fatal(err)
		}
		p.apply(payload)
	}
	if !p.Registered() || !p.Deceased() || p.BirthDate != "" || !p.DeceasedAt.Equal(time.Time{}) {
		t.Fatalf("erased patient = %+v", p)
	}
}
