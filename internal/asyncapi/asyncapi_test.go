package asyncapi_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/encounter"
	"github.com/chartstream/chartstream/commands/medicationorder"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/eventstore/eventstoretest"
	"github.com/chartstream/chartstream/internal/asyncapi"
	"github.com/chartstream/chartstream/internal/deid"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/workers"
)

// document returns the generated document, decoded.
func document(t *testing.T, specs []chartstream.EventSpec, dates deid.DateMode) (map[string]any, *deid.Deidentifier) {
	t.Helper()
	rules, err := deid.New(specs, deid.Config{Dates: dates})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := asyncapi.Document(specs, rules, asyncapi.DefaultStreams)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return doc, rules
}

// schemas compiles the payload schema of every message of the document.
func schemas(t *testing.T, doc map[string]any) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.AssertFormat()
	out := make(map[string]*jsonschema.Schema)
	messages := doc["components"].(map[string]any)["messages"].(map[string]any)
	for key, m := range messages {
		body, _ := json.Marshal(m.(map[string]any)["payload"].(map[string]any)["schema"])
		s, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		url := "mem://" + key + ".json"
		if err := c.AddResource(url, s); err != nil {
			t.Fatal(err)
		}
		if out[key], err = c.Compile(url); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	return out
}

// Every registered event type and schema version has a message on both
// channels; a type without a payload type or a rule fails the document.
func TestDocumentHasEveryEventType(t *testing.T) {
	t.Parallel()
	doc, rules := document(t, commands.EventSpecs(), deid.DatesYear)
	if doc["asyncapi"] != "3.0.0" {
		t.Errorf("asyncapi %v, want 3.0.0", doc["asyncapi"])
	}
	channels := doc["channels"].(map[string]any)
	for _, s := range commands.EventSpecs() {
		for _, ch := range []string{asyncapi.RawChannel, asyncapi.DeidChannel} {
			key := asyncapi.MessageKey(ch, s.Type, s.SchemaVersion)
			if _, ok := channels[ch].(map[string]any)["messages"].(map[string]any)[key]; !ok {
				t.Errorf("channel %s lacks %s", ch, key)
			}
		}
	}
	if n := len(doc["components"].(map[string]any)["messages"].(map[string]any)); n != 2*len(commands.EventSpecs()) {
		t.Errorf("%d messages, want %d", n, 2*len(commands.EventSpecs()))
	}
	untyped := append(commands.EventSpecs(), chartstream.EventSpec{Type: patient.TypeRegistered + "_again", SchemaVersion: 1})
	if _, err := asyncapi.Document(untyped, rules, asyncapi.DefaultStreams); err == nil {
		t.Error("a type without a payload type or rule made a document")
	}
	schemas(t, doc) // every schema compiles
}

// Real events, made by the commands and read back as the relay reads them,
// validate against their clinical message schema as the relay encodes
// them, and de-identified against theirs; both date modes.
func TestSamplePayloadsValidate(t *testing.T) {
	t.Parallel()
	events, store := sampleEvents(t)
	for _, dates := range []deid.DateMode{deid.DatesYear, deid.DatesShift} {
		doc, rules := document(t, commands.EventSpecs(), dates)
		compiled := schemas(t, doc)
		seen := make(map[string]bool)
		key, err := store.PseudonymKey(testkit.Context(t), events[0].Tenant)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			msg, err := workers.EncodeMessage(workers.DefaultSubjectPrefix, e)
			if err != nil {
				t.Fatal(err)
			}
			validate(t, compiled, asyncapi.MessageKey(asyncapi.RawChannel, e.Type, e.SchemaVersion), msg.Data)
			opened := e
			if err := store.Open(testkit.Context(t), &opened); err != nil {
				t.Fatal(err)
			}
			p := patientOf(opened)
			body, _ := json.Marshal(rules.Deidentify(deid.Input{Event: opened, Key: key, Patient: p, Erased: p == erasedPatient}))
			validate(t, compiled, asyncapi.MessageKey(asyncapi.DeidChannel, e.Type, e.SchemaVersion), body)
			seen[e.Type] = true
		}
		for _, s := range commands.EventSpecs() {
			if !seen[s.Type] {
				t.Errorf("no sample of %s", s.Type)
			}
		}
	}
}

func validate(t *testing.T, compiled map[string]*jsonschema.Schema, key string, body []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	s, ok := compiled[key]
	if !ok {
		t.Fatalf("no schema %s", key)
	}
	if err := s.Validate(inst); err != nil {
		t.Errorf("%s does not validate: %v\n%s", key, err, body)
	}
}

// erasedPatient is set by sampleEvents to the patient it erases.
var erasedPatient uuid.UUID

func patientOf(e chartstream.Event) uuid.UUID {
	if e.Stream.Type == patient.StreamType {
		return e.Stream.ID
	}
	var v struct {
		PatientID uuid.UUID `json:"patient_id"`
	}
	_ = json.Unmarshal(e.Payload, &v)
	return v.PatientID
}

// sampleEvents records an event of every type through the commands and
// returns the tenant's events as ReadAll gives them (PHI sealed).
func sampleEvents(t *testing.T) ([]chartstream.Event, *eventstore.Store) {
	t.Helper()
	store := testkit.MustEventStore(t, testkit.MustAppPool(t), commands.EventSpecs(), testkit.MustPHIKeys(t))
	ctx, tenant := testkit.Context(t), testkit.MustTenant(t)
	cmds := commands.New(store, nil)
	md := chartstream.Metadata{Actor: "sample"}
	run := func(c commands.Command) chartstream.CommandResult {
		t.Helper()
		res, err := cmds.Run(ctx, tenant, md, c)
		if err != nil {
			t.Fatalf("%s: %v", c.CommandName(), err)
		}
		return res
	}
	register := func(mrn, born string) uuid.UUID {
		return run(patient.RegisterPatient{MRN: mrn, Name: patient.HumanName{Family: "Sample", Given: []string{"Ada"}}, BirthDate: born,
			Sex: patient.SexFemale, Contact: patient.Contact{Phone: "+1 555 0100"}}).ID
	}
	p := register("S-1", "1931-05-02")
	register("S-3", "1990-06-15") // an exact age beside p's category
	name := patient.HumanName{Family: "Sample-Jones"}
	run(patient.UpdateDemographics{PatientID: p, Name: &name})
	allergy := run(patient.RecordAllergy{PatientID: p, Substance: patient.Coding{Code: "7980", System: patient.RxNorm, Display: "penicillin"},
		Criticality: patient.CriticalityHigh, Reaction: "hives"}).ID
	run(patient.RefuteAllergy{PatientID: p, AllergyID: allergy})
	cond := run(patient.DiagnoseCondition{PatientID: p, Code: "E11.9", System: "http://hl7.org/fhir/sid/icd-10-cm", Display: "type 2 diabetes", Onset: "2024-02-01"}).ID
	run(patient.ResolveCondition{PatientID: p, ConditionID: cond})
	enc := run(encounter.StartEncounter{PatientID: p, Class: encounter.ClassInpatient, Location: "Ada Sample's home, 12 Elm St", Reason: "fall"}).ID
	run(patient.RecordObservation{PatientID: p, Code: "8867-4", System: patient.LOINC, Value: ptr(72.0), Unit: "/min",
		EffectiveAt: time.Now().UTC().Format(time.RFC3339), EncounterID: &enc})
	run(encounter.TransferPatient{EncounterID: enc, Location: "Ward 6"})
	order := run(medicationorder.PrescribeMedication{PatientID: p, Medication: patient.Coding{Code: "197361", System: patient.RxNorm},
		Dose: "5 mg", Route: "oral", Frequency: "daily", Prescriber: "dr-1"}).ID
	run(medicationorder.DiscontinueMedication{OrderID: order, Reason: "side effects"})
	run(encounter.DischargePatient{EncounterID: enc})
	run(patient.RecordDeath{PatientID: p, DeceasedAt: time.Now().UTC().Format(time.RFC3339)})
	erasedPatient = register("S-2", "1931-05-02")
	run(patient.RecordObservation{PatientID: erasedPatient, Code: "8867-4", System: patient.LOINC, Value: ptr(80.0), Unit: "/min",
		EffectiveAt: time.Now().UTC().Format(time.RFC3339)})
	run(patient.ErasePatient{PatientID: erasedPatient})
	events := eventstoretest.ReadCommitted(t, ctx, store, tenant)
	if len(events) == 0 || !strings.Contains(events[0].Type, ".") {
		t.Fatalf("read %d events", len(events))
	}
	return events, store
}

func ptr[T any](v T) *T { return &v }
