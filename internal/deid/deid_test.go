package deid_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/encounter"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/internal/deid"
)

func mustNew(t *testing.T, cfg deid.Config) *deid.Deidentifier {
	t.Helper()
	d, err := deid.New(commands.EventSpecs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A registered event type without a rule must stop the de-identifier, so
// no event type ever reaches consumers by default.
func TestEveryRegisteredTypeHasARule(t *testing.T) {
	t.Parallel()
	d := mustNew(t, deid.Config{})
	for _, s := range commands.EventSpecs() {
		r, ok := d.Rule(s.Type)
		if !ok || r.SchemaVersion != s.SchemaVersion {
			t.Errorf("%s: rule %v (version %d), want one at version %d", s.Type, ok, r.SchemaVersion, s.SchemaVersion)
		}
	}
	specs := append(commands.EventSpecs(), chartstream.EventSpec{Type: "patient.photographed", SchemaVersion: 1})
	if _, err := deid.New(specs, deid.Config{}); err == nil || !strings.Contains(err.Error(), "patient.photographed") {
		t.Errorf("a type without a rule: %v, want refused naming it", err)
	}
	if _, err := deid.New(commands.EventSpecs()[1:], deid.Config{}); err == nil {
		t.Error("a rule for an unregistered type was accepted")
	}
	if _, err := deid.New(commands.EventSpecs(), deid.Config{Dates: "month"}); err == nil {
		t.Error("date mode month was accepted")
	}
}

func TestZIP3(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"02139": "021", "02139-4307": "021", "03601": "000", "05901": "000", "89301": "000", "82301": "000",
		"10001": "100", "20301": "000", "55601": "000", "69201": "000",
	} {
		if got, ok := deid.ZIP3(in); !ok || got != want {
			t.Errorf("ZIP3(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "0213", "021399", "SW1A 1AA", "02139 Main St"} {
		if got, ok := deid.ZIP3(bad); ok {
			t.Errorf("ZIP3(%q) = %q, want refused", bad, got)
		}
	}
}

// registered de-identifies a registration of someone born on birth,
// recorded at the given time.
func registered(t *testing.T, d *deid.Deidentifier, key []byte, patientID uuid.UUID, birth string, at time.Time) deid.Message {
	t.Helper()
	payload, _ := json.Marshal(map[string]any{
		"mrn": "MRN-0042", "name": map[string]any{"family": "Okonkwo", "given": []string{"Adaeze"}},
		"birth_date": birth, "sex": "female", "contact": map[string]any{"phone": "+1 617 555 0100"},
		"ssn": "123-45-6789", "address": map[string]any{"line": "12 Elm St", "city": "Cambridge", "state": "MA", "postal_code": "02139"},
	})
	e := chartstream.Event{Tenant: chartstream.NewTenantID(), Stream: chartstream.StreamRef{Type: patient.StreamType, ID: patientID},
		Version: 1, ID: uuid.New(), Type: patient.TypeRegistered, SchemaVersion: 1, Payload: payload, RecordedAt: at}
	return d.Deidentify(deid.Input{Event: e, Key: key, Patient: patientID})
}

func TestBirthDatesAndAges(t *testing.T) {
	t.Parallel()
	d := mustNew(t, deid.Config{})
	key := []byte("tenant key of thirty-two bytes!!")
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		birth, age string
	}{
		{"1980-07-15", "45"},
		{"1946-03-02", "79"},
		{"1946-03-01", "80+"}, // 80 on the day: the default span is 10 years
		{"1937-03-01", "80+"},
		{"1920-01-01", "80+"},
	} {
		m := registered(t, d, key, uuid.New(), tc.birth, at)
		if m.Payload["age"] != tc.age || m.Payload["birth_year"] != nil || m.Payload["birth_date"] != nil {
			t.Errorf("born %s: payload %v, want age %s and no birth date element", tc.birth, m.Payload, tc.age)
		}
		body, _ := json.Marshal(m)
		for _, leak := range []string{tc.birth, "Okonkwo", "Adaeze", "MRN-0042", "+1 617 555 0100", "123-45-6789", "Elm", "Cambridge"} {
			if strings.Contains(string(body), leak) {
				t.Errorf("born %s: %q survives in %s", tc.birth, leak, body)
			}
		}
		// The ZIP as a whole token: a random id's hex may hold the digits.
		if zip := regexp.MustCompile(`(^|[^0-9a-zA-Z])02139($|[^0-9a-zA-Z])`); zip.Match(body) {
			t.Errorf("born %s: the ZIP survives in %s", tc.birth, body)
		}
		if m.Payload["sex"] != "female" || m.Recorded != "2026" {
			t.Errorf("born %s: %s, want sex and the year recorded kept", tc.birth, body)
		}
		if addr, _ := m.Payload["address"].(map[string]any); addr["zip3"] != "021" || addr["state"] != "MA" || len(addr) != 2 {
			t.Errorf("address %v, want zip3 021 and state MA only", addr)
		}
	}
}

// Safe Harbor's ages over 89: a patient born 89 years before registering,
// with an event two years later under the same pseudonym. Nothing in the
// two messages (ages, birth date elements, the years recorded) lets a
// consumer work out an age of 90 or more, in either date mode.
func TestNoAgeOver89CanBeDerived(t *testing.T) {
	t.Parallel()
	key, p := []byte("tenant key"), uuid.New()
	registeredAt := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	later := registeredAt.AddDate(2, 0, 0)
	for _, mode := range []deid.DateMode{deid.DatesYear, deid.DatesShift} {
		d := mustNew(t, deid.Config{Dates: mode})
		reg := registered(t, d, key, p, "1937-03-01", registeredAt) // 89 on the day
		obs := d.Deidentify(deid.Input{Key: key, Patient: p, Event: chartstream.Event{Tenant: chartstream.NewTenantID(), ID: uuid.New(),
			Stream: chartstream.StreamRef{Type: patient.StreamType, ID: p}, Version: 2, Type: patient.TypeObservationRecorded, SchemaVersion: 1,
			Payload: json.RawMessage(`{"code":"8867-4","system":"http://loinc.org","value":72,"unit":"/min"}`), RecordedAt: later}})
		if reg.Patient != obs.Patient {
			t.Fatalf("%s: the two events have different pseudonyms", mode)
		}
		if got := derivableAge(t, reg, obs); got >= 90 {
			t.Errorf("%s: registration %v then an event recorded %s: an age of at least %d can be derived", mode, reg.Payload, obs.Recorded, got)
		}
	}
}

// derivableAge is the highest age a consumer can be sure of at the later
// message, from what the earlier one tells of the birth and the years
// both were recorded in.
func derivableAge(t *testing.T, earlier, later deid.Message) int {
	t.Helper()
	year := func(s string) int {
		if len(s) < 4 {
			t.Fatalf("recorded %q has no year", s)
		}
		y, err := strconv.Atoi(s[:4])
		if err != nil {
			t.Fatal(err)
		}
		return y
	}
	best := -1
	if age, err := strconv.Atoi(fmt.Sprint(earlier.Payload["age"])); err == nil {
		best = max(best, age+year(later.Recorded)-year(earlier.Recorded)-1)
	}
	for _, field := range []string{"birth_year", "birth_date"} {
		if born, ok := earlier.Payload[field].(string); ok {
			best = max(best, year(later.Recorded)-year(born)-1)
		}
	}
	return best
}

func TestPseudonymsStableWithinTenantUnlinkableAcross(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	a, b := []byte("tenant A key"), []byte("tenant B key")
	if deid.PseudonymOf(a, deid.EntityPatient, id) != deid.PseudonymOf(a, deid.EntityPatient, id) {
		t.Error("a pseudonym changed within its tenant")
	}
	if deid.PseudonymOf(a, deid.EntityPatient, id) == deid.PseudonymOf(b, deid.EntityPatient, id) {
		t.Error("one id has one pseudonym in two tenants")
	}
	if deid.PseudonymOf(a, deid.EntityPatient, id) == deid.PseudonymOf(a, deid.EntityEncounter, id) {
		t.Error("two kinds of entity share a pseudonym")
	}
	// The patient id in an encounter and the patient's stream id agree.
	d := mustNew(t, deid.Config{})
	payload := json.RawMessage(`{"patient_id":"` + id.String() + `","class":"inpatient","location":"Ward 4","reason":"fell at home"}`)
	enc := uuid.New()
	m := d.Deidentify(deid.Input{Key: a, Patient: id, Event: chartstream.Event{Tenant: chartstream.NewTenantID(), ID: uuid.New(),
		Stream: chartstream.StreamRef{Type: encounter.StreamType, ID: enc}, Version: 1, Type: encounter.TypeStarted, SchemaVersion: 1, Payload: payload}})
	if m.Payload["patient_id"] != deid.PseudonymOf(a, deid.EntityPatient, id) || m.Patient != m.Payload["patient_id"] ||
		m.Stream.ID != deid.PseudonymOf(a, deid.EntityEncounter, enc) || m.Payload["reason"] != nil ||
		m.Payload["location"] != deid.LabelPseudonymOf(a, deid.EntityLocation, "Ward 4") || m.Payload["location"] == deid.PseudonymOf(a, deid.EntityLocation, id) {
		t.Errorf("encounter started: %+v", m)
	}
}

func TestShiftedDatesKeepIntervals(t *testing.T) {
	t.Parallel()
	d := mustNew(t, deid.Config{Dates: deid.DatesShift, MaxShiftDays: 30})
	key, p := []byte("k"), uuid.New()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	obs := func(effective time.Time) deid.Message {
		payload, _ := json.Marshal(map[string]any{"observation_id": uuid.New(), "code": "8867-4", "system": patient.LOINC, "value": 72, "unit": "/min", "effective_at": effective})
		return d.Deidentify(deid.Input{Key: key, Patient: p, Event: chartstream.Event{Tenant: chartstream.NewTenantID(), ID: uuid.New(),
			Stream: chartstream.StreamRef{Type: patient.StreamType, ID: p}, Version: 2, Type: patient.TypeObservationRecorded, SchemaVersion: 1, Payload: payload, RecordedAt: at}})
	}
	first, second := obs(at), obs(at.Add(36*time.Hour))
	t1, err1 := time.Parse(time.RFC3339Nano, first.Payload["effective_at"].(string))
	t2, err2 := time.Parse(time.RFC3339Nano, second.Payload["effective_at"].(string))
	if err1 != nil || err2 != nil || t2.Sub(t1) != 36*time.Hour {
		t.Fatalf("shifted %v and %v, want 36h apart", first.Payload["effective_at"], second.Payload["effective_at"])
	}
	shift := t1.Sub(at)
	if shift == 0 || shift.Abs() > 30*24*time.Hour || shift%(24*time.Hour) != 0 {
		t.Errorf("shift %v, want a non-zero whole number of days within 30", shift)
	}
	if first.Payload["value"] != json.Number("72") || first.Payload["unit"] != "/min" {
		t.Errorf("observation payload %v", first.Payload)
	}
}

func TestErasedPatientsEventsAreWithheld(t *testing.T) {
	t.Parallel()
	d := mustNew(t, deid.Config{})
	p := uuid.New()
	ev := func(typ string, payload string) deid.Message {
		return d.Deidentify(deid.Input{Key: []byte("k"), Patient: p, Erased: true, Event: chartstream.Event{Tenant: chartstream.NewTenantID(), ID: uuid.New(),
			Stream: chartstream.StreamRef{Type: patient.StreamType, ID: p}, Version: 3, Type: typ, SchemaVersion: 1, Payload: json.RawMessage(payload)}})
	}
	obs := ev(patient.TypeObservationRecorded, `{"code":"8867-4","value":72}`)
	if obs.Withheld != deid.WithheldErased || obs.Payload != nil || obs.Patient != "" || obs.Stream.ID != "" {
		t.Errorf("an erased patient's observation: %+v, want withheld without pseudonyms", obs)
	}
	erased := ev(patient.TypeErased, `{"erased_at":"2026-03-01T10:00:00Z"}`)
	if erased.Withheld != "" || erased.Patient != deid.PseudonymOf([]byte("k"), deid.EntityPatient, p) || erased.Payload["erased_at"] != "2026" {
		t.Errorf("the erasure: %+v, want it told with the patient's pseudonym", erased)
	}
	if m := ev("patient.photographed", `{}`); m.Withheld != deid.WithheldUnknownType {
		t.Errorf("an unknown type: %+v, want withheld", m)
	}
}
