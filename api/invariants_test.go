package api_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/commands/medicationorder"
	"github.com/chartstream/chartstream/internal/testkit"
)

const rxNorm = "http://www.nlm.nih.gov/research/umls/rxnorm"

// prescription orders the medication with the RxNorm code; override, when
// not empty, is the reason to override an allergy alert.
func prescription(code, override string) map[string]any {
	p := map[string]any{
		"medication": map[string]any{"code": code, "display": "Penicillin G", "system": rxNorm},
		"dose":       "1 MU", "route": "iv", "frequency": "q4h",
	}
	if override != "" {
		p["override"] = map[string]any{"reason": override}
	}
	return p
}

// A registration answers 201 with where the patient is, its version as
// ETag and a consistency token naming the write's event, and exactly
// {id, version} as body: no global position, which would let a tenant
// measure the others' writes.
func TestRegisterPatientAnswersWithLocationVersionAndToken(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	tenant := testkit.MustTenant(t)
	r := e.do(http.MethodPost, "/v1/patients", e.token(tenant, chartstream.RoleClinician), newPatient()).want(t, http.StatusCreated)
	if r.Result.ID == uuid.Nil || r.Result.Version != 1 {
		t.Errorf("result %+v, want an id and version 1", r.Result)
	}
	if got, want := r.Header.Get("Location"), "/v1/patients/"+r.Result.ID.String(); got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	if got := r.Header.Get("ETag"); got != `"1"` {
		t.Errorf(`ETag %s, want "1"`, got)
	}
	event, err := api.ParseConsistencyToken(r.Header.Get(api.HeaderConsistencyToken))
	if err != nil {
		t.Fatalf("consistency token: %v", err)
	}
	if got := e.eventIDs(tenant); len(got) != 1 || got[0] != event {
		t.Errorf("consistency token names event %s; the tenant's events are %v", event, got)
	}
	if keys := slices.Sorted(maps.Keys(r.Body)); !slices.Equal(keys, []string{"id", "version"}) {
		t.Errorf("body has fields %v, want id, version", keys)
	}
	e.wantEvents(tenant, 1, "after one registration")
}

// An MRN names one patient per tenant: a second registration under it is
// 409 and writes nothing, while another tenant may use it.
func TestMedicalRecordNumberIsUniquePerTenant(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	a, b := testkit.MustTenant(t), testkit.MustTenant(t)
	tokenA := e.token(a, chartstream.RoleClinician)
	body := newPatient()
	e.do(http.MethodPost, "/v1/patients", tokenA, body).want(t, http.StatusCreated)
	twin := newPatient()
	twin["mrn"] = body["mrn"]
	e.do(http.MethodPost, "/v1/patients", tokenA, twin).wantProblem(t, http.StatusConflict, chartstream.ECONFLICT)
	e.wantEvents(a, 1, "after the duplicate")
	e.do(http.MethodPost, "/v1/patients", e.token(b, chartstream.RoleClinician), body).want(t, http.StatusCreated)
}

// The dead get no new encounter or prescription, and die once.
func TestDeceasedPatientRefusesNewCare(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	p := "/v1/patients/" + c.patient.String()
	e.do(http.MethodPost, p+"/deceased", c.token, map[string]any{"deceased_at": "1980-01-01T00:00:00Z"}).
		wantProblem(t, http.StatusUnprocessableEntity, chartstream.EUNPROCESSABLE) // before birth
	e.do(http.MethodPost, p+"/deceased", c.token, map[string]any{"deceased_at": "2025-03-01T10:00:00Z"}).want(t, http.StatusOK)
	before := e.eventCount(c.tenant)
	e.do(http.MethodPost, p+"/encounters", c.token, map[string]any{"class": "emergency", "location": "ED"}).
		wantProblem(t, http.StatusUnprocessableEntity, chartstream.EUNPROCESSABLE)
	e.do(http.MethodPost, p+"/medication-orders", c.token, prescription("197361", "")).
		wantProblem(t, http.StatusUnprocessableEntity, chartstream.EUNPROCESSABLE)
	e.do(http.MethodPost, p+"/deceased", c.token, map[string]any{"deceased_at": "2025-03-02T10:00:00Z"}).
		wantProblem(t, http.StatusConflict, chartstream.ECONFLICT)
	e.wantEvents(c.tenant, before, "after refused commands")
	// Late lab results are real: observations are still accepted.
	e.do(http.MethodPost, p+"/observations", c.token, map[string]any{
		"code": "8867-4", "system": "http://loinc.org", "value": 0, "unit": "/min", "effective_at": "2025-03-01T10:05:00Z",
	}).want(t, http.StatusCreated)
}

// Only an encounter in progress is transferred or discharged.
func TestEncounterTransfersAndDischargesOnlyInProgress(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	enc := "/v1/encounters/" + c.encounter.String()
	e.do(http.MethodPost, enc+"/transfer", c.token, map[string]any{"location": "Ward 3B"}).
		wantProblem(t, http.StatusUnprocessableEntity, chartstream.EUNPROCESSABLE) // already there
	e.do(http.MethodPost, enc+"/transfer", c.token, map[string]any{"location": "ICU"}).want(t, http.StatusOK)
	e.do(http.MethodPost, enc+"/discharge", c.token, nil).want(t, http.StatusOK)
	before := e.eventCount(c.tenant)
	e.do(http.MethodPost, enc+"/discharge", c.token, nil).wantProblem(t, http.StatusConflict, chartstream.ECONFLICT)
	e.do(http.MethodPost, enc+"/transfer", c.token, map[string]any{"location": "Ward 5"}).
		wantProblem(t, http.StatusConflict, chartstream.ECONFLICT)
	e.do(http.MethodPost, "/v1/encounters/"+uuid.NewString()+"/discharge", c.token, nil).
		wantProblem(t, http.StatusNotFound, chartstream.ENOTFOUND)
	e.wantEvents(c.tenant, before, "after refused commands")
}

// Allergies are refuted once, conditions resolved once, orders
// discontinued once; unknown ones are 404.
func TestStateChangesHappenOnce(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	p := "/v1/patients/" + c.patient.String()
	steps := []struct {
		name   string
		path   string
		first  int
		code   string
		status int
	}{
		{"refute unknown allergy", p + "/allergies/" + uuid.NewString() + "/refute", 0, chartstream.ENOTFOUND, http.StatusNotFound},
		{"refute allergy twice", p + "/allergies/" + c.allergy.String() + "/refute", http.StatusOK, chartstream.ECONFLICT, http.StatusConflict},
		{"resolve unknown condition", p + "/conditions/" + uuid.NewString() + "/resolve", 0, chartstream.ENOTFOUND, http.StatusNotFound},
		{"resolve condition twice", p + "/conditions/" + c.condition.String() + "/resolve", http.StatusOK, chartstream.ECONFLICT, http.StatusConflict},
		{"discontinue unknown order", "/v1/medication-orders/" + uuid.NewString() + "/discontinue", 0, chartstream.ENOTFOUND, http.StatusNotFound},
		{"discontinue twice", "/v1/medication-orders/" + c.medication.String() + "/discontinue", http.StatusOK, chartstream.ECONFLICT, http.StatusConflict},
	}
	for _, s := range steps {
		if s.first != 0 {
			e.do(http.MethodPost, s.path, c.token, nil).want(t, s.first)
		}
		before := e.eventCount(c.tenant)
		e.do(http.MethodPost, s.path, c.token, nil).wantProblem(t, s.status, s.code)
		e.wantEvents(c.tenant, before, "after: "+s.name)
	}
}

// A prescription of a substance the patient is allergic to needs an
// override, whose reason the order records; once the allergy is refuted,
// it needs none.
func TestPrescriptionAgainstAnAllergyNeedsAnOverride(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart() // allergic to RxNorm 7980
	orders := "/v1/patients/" + c.patient.String() + "/medication-orders"
	before := e.eventCount(c.tenant)
	r := e.do(http.MethodPost, orders, c.token, prescription("7980", "")).
		wantProblem(t, http.StatusUnprocessableEntity, chartstream.EUNPROCESSABLE)
	if !strings.Contains(r.Problem.Detail, "override") {
		t.Errorf("detail %q does not say an override is needed", r.Problem.Detail)
	}
	e.wantEvents(c.tenant, before, "after the refusal")

	const reason = "anaphylaxis history reviewed; desensitisation protocol"
	id := e.do(http.MethodPost, orders, c.token, prescription("7980", reason)).want(t, http.StatusCreated).Result.ID
	events, err := e.store.ReadStream(testkit.Context(t), c.tenant, medicationorder.Stream(id), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Type != medicationorder.TypePrescribed {
		t.Fatalf("order stream holds %d events, want one %s", len(events), medicationorder.TypePrescribed)
	}
	var prescribed medicationorder.MedicationPrescribed
	if err := json.Unmarshal(events[0].Payload, &prescribed); err != nil {
		t.Fatal(err)
	}
	if prescribed.Override == nil || prescribed.Override.Reason != reason {
		t.Errorf("event records override %+v, want reason %q", prescribed.Override, reason)
	}

	e.do(http.MethodPost, "/v1/patients/"+c.patient.String()+"/allergies/"+c.allergy.String()+"/refute", c.token, nil).want(t, http.StatusOK)
	e.do(http.MethodPost, orders, c.token, prescription("7980", "")).want(t, http.StatusCreated)
}

// Bad input is 400 naming the field: an observation takes exactly one of
// value and value_code, enums take their values, dates their format.
func TestInvalidInputNamesTheField(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	p := "/v1/patients/" + c.patient.String()
	obs := func(edit func(map[string]any)) map[string]any {
		o := map[string]any{"code": "8867-4", "system": "http://loinc.org", "effective_at": "2025-03-01T10:00:00Z"}
		edit(o)
		return o
	}
	patient := func(field string, v any) map[string]any {
		b := newPatient()
		b[field] = v
		return b
	}
	cases := []struct {
		name, path string
		body       any
		field      string
	}{
		{"observation with value and value_code", p + "/observations", obs(func(o map[string]any) { o["value"], o["unit"], o["value_code"] = 7.1, "mmol/L", "LA6576-8" }), "value"},
		{"observation with neither", p + "/observations", obs(func(map[string]any) {}), "value"},
		{"observation effective_at not RFC 3339", p + "/observations", obs(func(o map[string]any) { o["value"], o["unit"], o["effective_at"] = 72, "/min", "01/03/2025 10:00" }), "effective_at"},
		{"observation in the future", p + "/observations", obs(func(o map[string]any) { o["value"], o["unit"], o["effective_at"] = 72, "/min", "2999-01-01T00:00:00Z" }), "effective_at"},
		{"sex not in the enum", "/v1/patients", patient("sex", "robot"), "sex"},
		{"birth_date not a date", "/v1/patients", patient("birth_date", "02/01/1990"), "birth_date"},
		{"birth_date in the future", "/v1/patients", patient("birth_date", "2999-01-01"), "birth_date"},
		{"birth_date impossible", "/v1/patients", patient("birth_date", "1990-02-30"), "birth_date"},
		{"encounter class not in the enum", p + "/encounters", map[string]any{"class": "spaceship", "location": "Ward 1"}, "class"},
		{"criticality not in the enum", p + "/allergies", map[string]any{"substance": map[string]any{"code": "1191", "system": rxNorm}, "criticality": "extreme"}, "criticality"},
		{"condition onset not a date", p + "/conditions", map[string]any{"code": "38341003", "system": "http://snomed.info/sct", "onset": "May 2020"}, "onset"},
		{"deceased_at not a date-time", p + "/deceased", map[string]any{"deceased_at": "2025-03-01"}, "deceased_at"},
	}
	before := e.eventCount(c.tenant)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.do(http.MethodPost, tc.path, c.token, tc.body).wantProblem(t, http.StatusBadRequest, chartstream.EINVALID).wantField(t, tc.field)
		})
	}
	e.wantEvents(c.tenant, before, "after invalid commands")
}
