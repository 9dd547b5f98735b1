package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

// Following next links to the end returns every match exactly once, with
// a total only where the page is the whole result, for the paged read
// models (observations, patients) and the unpaged ones (orders).
func TestFHIRPagingReturnsEveryResourceOnce(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	p := "/v1/patients/" + c.patient.String()
	for i := range 7 {
		e.do(http.MethodPost, p+"/observations", c.token, map[string]any{
			"code": "8867-4", "system": "http://loinc.org", "value": 60 + i, "unit": "/min",
			"effective_at": fmt.Sprintf("2025-03-01T10:%02d:00Z", i%3), // ties on time page by id
		}).want(t, http.StatusCreated)
	}
	for range 4 {
		e.do(http.MethodPost, p+"/medication-orders", c.token, prescription("197361", "")).want(t, http.StatusCreated)
	}
	for range 4 {
		e.do(http.MethodPost, "/v1/patients", c.token, newPatient()).want(t, http.StatusCreated)
	}
	e.project(c.tenant)
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/fhir/R4/Observation?patient=" + c.patient.String() + "&_count=3", 7},
		{"/fhir/R4/MedicationRequest?patient=Patient/" + c.patient.String() + "&_count=2", 5},
		{"/fhir/R4/Patient?name=ada&_count=2", 5},
	} {
		seen := map[string]int{}
		pages := 0
		for path := tc.path; path != ""; pages++ {
			b := e.do(http.MethodGet, path, c.token, nil).wantFHIR(t, http.StatusOK, "Bundle")
			if b["type"] != "searchset" {
				t.Errorf("%s: bundle type %v", path, b["type"])
			}
			for _, en := range entries(b) {
				seen[en["resource"].(map[string]any)["id"].(string)]++
			}
			if path = e.nextPath(b); path != "" && b["total"] != nil {
				t.Errorf("%s: total %v on a page with more", path, b["total"])
			}
			if pages > 10 {
				t.Fatalf("%s: paging does not end", tc.path)
			}
		}
		if len(seen) != tc.want {
			t.Errorf("%s: %d resources over %d pages, want %d", tc.path, len(seen), pages, tc.want)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("%s: %s returned %d times", tc.path, id, n)
			}
		}
	}
	all := e.do(http.MethodGet, "/fhir/R4/MedicationRequest?patient="+c.patient.String(), c.token, nil).wantFHIR(t, http.StatusOK, "Bundle")
	if all["total"] != 5.0 {
		t.Errorf("single page total %v, want 5", all["total"])
	}
}

// The date parameter takes a day, its eq/ge/gt/le/lt prefixes, date-times
// and repeats that bound both ends.
func TestFHIRObservationDateSearch(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	for _, at := range []string{"2025-03-01T23:59:59Z", "2025-03-02T00:00:00Z", "2025-03-02T12:00:00Z", "2025-03-03T00:00:00Z"} {
		e.do(http.MethodPost, "/v1/patients/"+c.patient.String()+"/observations", c.token, map[string]any{
			"code": "8310-5", "system": "http://loinc.org", "value": 37, "unit": "Cel", "effective_at": at,
		}).want(t, http.StatusCreated)
	}
	e.project(c.tenant)
	for q, want := range map[string]int{
		"date=2025-03-02":                         2,
		"date=eq2025-03-02":                       2,
		"date=ge2025-03-02":                       3,
		"date=gt2025-03-02":                       1,
		"date=lt2025-03-02":                       1,
		"date=le2025-03-02":                       3,
		"date=ge2025-03-02&date=lt2025-03-03":     2,
		"date=gt2025-03-03&date=lt2025-03-01":     0,
		"date=2025-03":                            4,
		"date=ge2025-03-02T12:00:00Z":             2,
		"date=2025-03-02T12:00:00%2B00:00":        1,
		"code=http://loinc.org|8310-5":            4,
		"code=8867-4":                             0,
		"code=http://snomed.info/sct|8310-5":      0,
		"date=ge2025-03-02&code=8310-5&_count=10": 3,
	} {
		b := e.do(http.MethodGet, "/fhir/R4/Observation?patient="+c.patient.String()+"&"+q, c.token, nil).wantFHIR(t, http.StatusOK, "Bundle")
		if got := len(entries(b)); got != want {
			t.Errorf("%s: %d observations, want %d", q, got, want)
		}
	}
	for _, q := range []string{"date=ne2025-03-02", "date=sa2025-03-02", "date=02/03/2025", "date=2025-13-01"} {
		e.do(http.MethodGet, "/fhir/R4/Observation?patient="+c.patient.String()+"&"+q, c.token, nil).wantOutcome(t, http.StatusBadRequest, "invalid")
	}
}

// Errors on FHIR paths, whatever raises them (authentication, roles, the
// router, parameters, the read models), are OperationOutcomes with the
// status the API's error mapping gives; /metadata needs no token.
func TestFHIRErrorsAreOperationOutcomes(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	e.project(c.tenant)
	patient := "/fhir/R4/Patient/" + c.patient.String()
	q := "?patient=" + c.patient.String()
	r := e.do(http.MethodGet, patient, "", nil).wantOutcome(t, http.StatusUnauthorized, "login")
	if r.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without a challenge")
	}
	e.do(http.MethodGet, patient, "not-a-token", nil).wantOutcome(t, http.StatusUnauthorized, "login")
	e.do(http.MethodGet, patient, e.token(c.tenant, chartstream.RoleAnalyst), nil).wantOutcome(t, http.StatusForbidden, "forbidden")
	e.do(http.MethodGet, "/fhir/R4/Patient/"+uuid.NewString(), c.token, nil).wantOutcome(t, http.StatusNotFound, "not-found")
	e.do(http.MethodGet, "/fhir/R4/Patient/not-a-uuid", c.token, nil).wantOutcome(t, http.StatusNotFound, "not-found")
	e.do(http.MethodGet, "/fhir/R4/Practitioner", c.token, nil).wantOutcome(t, http.StatusNotFound, "not-found")
	// A method no route takes is answered as on /v1 (the group's catch-all
	// makes it a 404), but as an OperationOutcome.
	jsonStatus := e.do(http.MethodDelete, "/v1/encounters", c.token, nil).Status
	if got := e.do(http.MethodDelete, "/fhir/R4/Encounter", c.token, nil); got.Status != jsonStatus {
		t.Errorf("DELETE on a FHIR search: %d, on a JSON one %d", got.Status, jsonStatus)
	} else {
		got.wantFHIR(t, jsonStatus, "OperationOutcome")
	}
	for _, bad := range []string{
		"/Observation",                   // patient is required
		"/Observation" + q + "&_count=0", // out of range
		"/Observation" + q + "&_count=x",
		"/Observation" + q + "&_cursor=bogus",
		"/MedicationRequest" + q + "&_cursor=bogus",
		"/Observation" + q + "&subject=x", // not supported: refused, not ignored
		"/Patient?name:exact=Ada",
		"/Patient?birthdate=ge1990-01-01",
		"/Patient?name=a&name=b",
		"/Encounter?status=planned",
		"/MedicationRequest" + q + "&status=draft",
	} {
		e.do(http.MethodGet, "/fhir/R4"+bad, c.token, nil).wantOutcome(t, http.StatusBadRequest, "invalid")
	}
	e.do(http.MethodGet, "/fhir/R4/metadata", "", nil).wantFHIR(t, http.StatusOK, "CapabilityStatement")
	// The JSON API keeps problem+json.
	e.do(http.MethodGet, "/v1/patients/"+uuid.NewString(), c.token, nil).wantProblem(t, http.StatusNotFound, chartstream.ENOTFOUND)
}

// Tenant B, searching with tenant A's patient, gets the 404 an unknown
// patient gets, as on the JSON reads, and finds none of A's patients or
// encounters in its own searches.
func TestFHIRSearchesHideOtherTenantsPatients(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	a := e.newFHIRChart()
	_, tokenB := e.newTenant(chartstream.RoleClinician)
	for _, typ := range []string{"Observation", "Encounter", "MedicationRequest", "AllergyIntolerance", "Condition"} {
		got := e.do(http.MethodGet, "/fhir/R4/"+typ+"?patient="+a.patient.String(), tokenB, nil).wantOutcome(t, http.StatusNotFound, "not-found")
		unknown := e.do(http.MethodGet, "/fhir/R4/"+typ+"?patient="+uuid.NewString(), tokenB, nil).wantOutcome(t, http.StatusNotFound, "not-found")
		if string(got.Raw) != string(unknown.Raw) {
			t.Errorf("%s: A's patient answers %s, an unknown one %s", typ, got.Raw, unknown.Raw)
		}
		// A's own clinician does see them: the 404 is the tenant's doing.
		e.do(http.MethodGet, "/fhir/R4/"+typ+a.query, a.token, nil).wantFHIR(t, http.StatusOK, "Bundle")
	}
	e.do(http.MethodGet, "/fhir/R4/Patient/"+a.patient.String(), tokenB, nil).wantOutcome(t, http.StatusNotFound, "not-found")
	for _, q := range []string{"/Patient?identifier=" + a.mrn, "/Patient?name=lovelace", "/Patient", "/Encounter", "/Encounter?status=in-progress"} {
		b := e.do(http.MethodGet, "/fhir/R4"+q, tokenB, nil).wantFHIR(t, http.StatusOK, "Bundle")
		if n := len(entries(b)); n != 0 || b["total"] != 0.0 {
			t.Errorf("tenant B's %s finds %d of A's resources (total %v)", q, n, b["total"])
		}
	}
}
