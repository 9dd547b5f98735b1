package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
)

// outcomeProblem reads an OperationOutcome as the Problem it renders: the
// problem type from the first issue's details coding, its diagnostics as
// detail.
func outcomeProblem(status int, raw []byte) api.Problem {
	var o struct {
		Issue []struct {
			Details struct {
				Coding []struct{ Code string } `json:"coding"`
			} `json:"details"`
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	p := api.Problem{Status: status}
	if json.Unmarshal(raw, &o) != nil || len(o.Issue) == 0 || len(o.Issue[0].Details.Coding) == 0 {
		return p
	}
	p.Type, p.Detail = api.ProblemType(o.Issue[0].Details.Coding[0].Code), o.Issue[0].Diagnostics
	return p
}

// wantFHIR fails the test unless the reply has the status, the FHIR
// content type and a body the strict R4 parser (google/fhir jsonformat,
// which refuses unknown elements, malformed values and missing required
// ones) accepts as resourceType; a Bundle's entries are parsed one by one
// too. It returns the body.
func (r reply) wantFHIR(t *testing.T, status int, resourceType string) map[string]any {
	t.Helper()
	r.want(t, status)
	if ct := r.Header.Get("Content-Type"); ct != api.FHIRContentType {
		t.Errorf("content type %q, want %q", ct, api.FHIRContentType)
	}
	parseFHIR(t, r.Raw)
	if r.Body["resourceType"] != resourceType {
		t.Fatalf("resourceType %v, want %s: %s", r.Body["resourceType"], resourceType, r.Raw)
	}
	for _, e := range entries(r.Body) {
		raw, err := json.Marshal(e["resource"])
		if err != nil {
			t.Fatal(err)
		}
		parseFHIR(t, raw)
	}
	return r.Body
}

func parseFHIR(t *testing.T, raw []byte) {
	t.Helper()
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.UnmarshalR4(raw); err != nil {
		t.Errorf("strict FHIR R4 parser refuses the response: %v\n%s", err, raw)
	}
}

// wantOutcome fails the test unless the reply is a strictly valid
// OperationOutcome with the status and the FHIR issue type.
func (r reply) wantOutcome(t *testing.T, status int, issueCode string) reply {
	t.Helper()
	body := r.wantFHIR(t, status, "OperationOutcome")
	issues, _ := body["issue"].([]any)
	if len(issues) == 0 || issues[0].(map[string]any)["code"] != issueCode {
		t.Errorf("issues %v, want first of code %s", issues, issueCode)
	}
	return r
}

// entries returns a Bundle's entries.
func entries(bundle map[string]any) []map[string]any {
	list, _ := bundle["entry"].([]any)
	out := make([]map[string]any, len(list))
	for i, e := range list {
		out[i] = e.(map[string]any)
	}
	return out
}

// resources returns a Bundle's resources by id.
func resources(bundle map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, e := range entries(bundle) {
		res := e["resource"].(map[string]any)
		out[res["id"].(string)] = res
	}
	return out
}

// at walks a decoded JSON value by object keys and array indexes ("0").
func at(v any, path ...string) any {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// fhirChart is a projected chart with more of everything: contact details,
// a vital sign during the encounter, a coded observation, a finished
// encounter, a stopped order and a deceased second patient.
type fhirChart struct {
	chart
	mrn                string
	vital, coded       uuid.UUID
	finished, stopped  uuid.UUID
	deceased           uuid.UUID
	deceasedMRN, query string
}

func (e *apiEnv) newFHIRChart() fhirChart {
	e.t.Helper()
	c := fhirChart{chart: e.newChart()}
	p := "/v1/patients/" + c.patient.String()
	e.do(http.MethodPatch, p, c.token, map[string]any{"contact": map[string]any{"phone": "+44 20 7946 0000", "email": "ada@example.org"}}).want(e.t, http.StatusOK)
	c.vital = e.do(http.MethodPost, p+"/observations", c.token, map[string]any{
		"code": "8867-4", "system": "http://loinc.org", "value": 72, "unit": "/min", "effective_at": "2025-03-01T10:00:00Z",
		"encounter_id": c.encounter,
	}).want(e.t, http.StatusCreated).Result.ID
	c.coded = e.do(http.MethodPost, p+"/observations", c.token, map[string]any{
		"code": "72166-2", "system": "http://loinc.org", "value_code": "LA18976-3", "effective_at": "2025-03-02T09:30:00.5Z",
	}).want(e.t, http.StatusCreated).Result.ID
	c.finished = e.do(http.MethodPost, p+"/encounters", c.token, map[string]any{"class": "emergency", "location": "ED"}).
		want(e.t, http.StatusCreated).Result.ID
	e.do(http.MethodPost, "/v1/encounters/"+c.finished.String()+"/discharge", c.token, nil).want(e.t, http.StatusOK)
	c.stopped = e.do(http.MethodPost, p+"/medication-orders", c.token, prescription("1191", "")).want(e.t, http.StatusCreated).Result.ID
	e.do(http.MethodPost, "/v1/medication-orders/"+c.stopped.String()+"/discontinue", c.token, nil).want(e.t, http.StatusOK)
	dead := newPatient()
	c.deceasedMRN = dead["mrn"].(string)
	c.deceased = e.do(http.MethodPost, "/v1/patients", c.token, dead).want(e.t, http.StatusCreated).Result.ID
	e.do(http.MethodPost, "/v1/patients/"+c.deceased.String()+"/deceased", c.token, map[string]any{"deceased_at": "2025-03-01T10:00:00Z"}).
		want(e.t, http.StatusOK)
	e.project(c.tenant)
	c.mrn, _ = e.do(http.MethodGet, p, c.token, nil).want(e.t, http.StatusOK).Body["mrn"].(string)
	c.query = "?patient=" + c.patient.String()
	return c
}

// Every FHIR endpoint answers resources the strict R4 parser accepts, with
// the chart's data mapped faithfully.
func TestFHIREndpointsEmitStrictlyValidR4(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newFHIRChart()
	get := func(path string, resourceType string) map[string]any {
		t.Helper()
		return e.do(http.MethodGet, "/fhir/R4"+path, c.token, nil).wantFHIR(t, http.StatusOK, resourceType)
	}
	check := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}

	cs := e.do(http.MethodGet, "/fhir/R4/metadata", "", nil).wantFHIR(t, http.StatusOK, "CapabilityStatement")
	check("CapabilityStatement resources", len(at(cs, "rest", "0", "resource").([]any)), 6)
	// Patient's interactions are those its routes serve: search (also by
	// POST _search), read, vread and its history; the others search and
	// read only.
	for _, r := range at(cs, "rest", "0", "resource").([]any) {
		var codes []string
		for _, i := range at(r, "interaction").([]any) {
			codes = append(codes, at(i, "code").(string))
		}
		want := []string{"search-type", "read"}
		if at(r, "type") == "Patient" {
			want = append(want, "vread", "history-instance")
			check("Patient search documentation", strings.Contains(fmt.Sprint(at(r, "interaction", "0", "documentation")), "POST Patient/_search"), true)
		}
		check(fmt.Sprint(at(r, "type"), " interactions"), strings.Join(codes, ","), strings.Join(want, ","))
	}

	p := get("/Patient/"+c.patient.String(), "Patient")
	check("identifier system", at(p, "identifier", "0", "system"), "urn:chartstream:mrn")
	check("identifier value", at(p, "identifier", "0", "value"), c.mrn)
	check("family", at(p, "name", "0", "family"), "Lovelace")
	check("given", at(p, "name", "0", "given", "0"), "Ada")
	check("gender", p["gender"], "female")
	check("birthDate", p["birthDate"], "1990-01-02")
	check("phone", at(p, "telecom", "0", "value"), "+44 20 7946 0000")
	check("email", at(p, "telecom", "1", "system"), "email")
	check("not deceased", p["deceasedBoolean"], nil)

	for _, q := range []string{"identifier=" + c.deceasedMRN, "identifier=urn:chartstream:mrn|" + c.deceasedMRN, "name=lovelace&birthdate=eq1990-01-02"} {
		b := get("/Patient?"+q, "Bundle")
		if dead := resources(b)[c.deceased.String()]; dead == nil || dead["deceasedDateTime"] != "2025-03-01T10:00:00Z" {
			t.Errorf("Patient?%s: deceased patient %v, want deceasedDateTime", q, dead)
		}
	}
	check("MRN of another system", at(get("/Patient?identifier=urn:other|"+c.mrn, "Bundle"), "total"), 0.0)

	obs := resources(get("/Observation"+c.query, "Bundle"))
	vital, coded := obs[c.vital.String()], obs[c.coded.String()]
	check("vital category", at(vital, "category", "0", "coding", "0", "code"), "vital-signs")
	check("vital code", at(vital, "code", "coding", "0", "system"), "http://loinc.org")
	check("vital UCUM", at(vital, "valueQuantity", "system"), "http://unitsofmeasure.org")
	check("vital value", at(vital, "valueQuantity", "value"), 72.0)
	check("vital encounter", at(vital, "encounter", "reference"), "Encounter/"+c.encounter.String())
	check("vital subject", at(vital, "subject", "reference"), "Patient/"+c.patient.String())
	check("vital status", vital["status"], "final")
	check("coded category", coded["category"], nil)
	check("coded value", at(coded, "valueCodeableConcept", "coding", "0", "code"), "LA18976-3")
	check("coded effective", coded["effectiveDateTime"], "2025-03-02T09:30:00.5Z")

	enc := resources(get("/Encounter"+c.query, "Bundle"))
	check("inpatient class", at(enc[c.encounter.String()], "class", "code"), "IMP")
	check("inpatient status", at(enc[c.encounter.String()], "status"), "in-progress")
	check("location", at(enc[c.encounter.String()], "location", "0", "location", "display"), "Ward 3B")
	check("emergency class", at(enc[c.finished.String()], "class", "code"), "EMER")
	check("finished has an end", at(enc[c.finished.String()], "period", "end") != nil, true)
	check("finished only", len(entries(get("/Encounter"+c.query+"&status=finished", "Bundle"))), 1)
	check("tenant's census", len(entries(get("/Encounter?status=in-progress", "Bundle"))), 1)

	meds := get("/MedicationRequest"+c.query, "Bundle")
	check("orders total", meds["total"], 2.0)
	active := resources(meds)[c.medication.String()]
	check("active", active["status"], "active")
	check("intent", active["intent"], "order")
	check("RxNorm", at(active, "medicationCodeableConcept", "coding", "0", "system"), rxNorm)
	check("dosage", at(active, "dosageInstruction", "0", "text"), "5 mg oral daily")
	check("requester system", at(active, "requester", "identifier", "system"), "urn:chartstream:subject")
	stopped := get("/MedicationRequest"+c.query+"&status=stopped", "Bundle")
	check("stopped", at(stopped, "entry", "0", "resource", "status"), "stopped")

	allergy := at(get("/AllergyIntolerance"+c.query, "Bundle"), "entry", "0", "resource")
	check("allergy criticality", at(allergy, "criticality"), "high")
	check("allergy verification", at(allergy, "verificationStatus", "coding", "0", "code"), "confirmed")
	check("allergy patient", at(allergy, "patient", "reference"), "Patient/"+c.patient.String())
	condition := at(get("/Condition"+c.query, "Bundle"), "entry", "0", "resource")
	check("condition status", at(condition, "clinicalStatus", "coding", "0", "code"), "active")
	check("condition code", at(condition, "code", "coding", "0", "code"), "44054006")
}

// nextPath turns a Bundle's absolute next link into a request path.
func (e *apiEnv) nextPath(bundle map[string]any) string {
	e.t.Helper()
	for _, l := range bundle["link"].([]any) {
		l := l.(map[string]any)
		if l["relation"] == "next" {
			u, err := url.Parse(l["url"].(string))
			if err != nil || !strings.HasPrefix(l["url"].(string), e.url+"/fhir/R4/") {
				e.t.Fatalf("next link %v is not an absolute URL of the server", l["url"])
			}
			return u.RequestURI()
		}
	}
	return ""
}

// Every entry's fullUrl in every search resolves: a read of the resource,
// strictly valid, of the entry's type and id.
func TestFHIRFullURLsResolve(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newFHIRChart()
	searches := []string{"/Patient?identifier=" + c.mrn, "/Observation" + c.query, "/Encounter" + c.query,
		"/MedicationRequest" + c.query, "/AllergyIntolerance" + c.query, "/Condition" + c.query}
	read := 0
	for _, search := range searches {
		bundle := e.do(http.MethodGet, "/fhir/R4"+search, c.token, nil).wantFHIR(t, http.StatusOK, "Bundle")
		for _, en := range entries(bundle) {
			full, _ := en["fullUrl"].(string)
			u, err := url.Parse(full)
			if err != nil || !strings.HasPrefix(full, e.url+"/fhir/R4/") {
				t.Fatalf("%s: fullUrl %q is not an absolute URL of the server", search, full)
			}
			resource := en["resource"].(map[string]any)
			typ, id := resource["resourceType"].(string), resource["id"].(string)
			got := e.do(http.MethodGet, u.RequestURI(), c.token, nil).wantFHIR(t, http.StatusOK, typ)
			if got["id"] != id {
				t.Errorf("%s read answers id %v, want %s", full, got["id"], id)
			}
			read++
		}
	}
	if read < 6 {
		t.Fatalf("followed %d fullUrls, want at least one per search", read)
	}
	// Another tenant's resources are unknown ids there.
	_, tokenB := e.newTenant(chartstream.RoleClinician)
	e.do(http.MethodGet, "/fhir/R4/Observation/"+c.vital.String(), tokenB, nil).wantOutcome(t, http.StatusNotFound, "not-found")
}
