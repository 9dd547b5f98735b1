package api_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
)

// Query parameters get the bodies' rules. Before, Echo's parsing dropped a
// malformed pair (so ?mrn=%zz listed every patient), the first of two
// values won, unknown parameters were ignored and invalid UTF-8 was
// passed on: each widened or changed a search of PHI without a word.
func TestQueryParametersAreStrict(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	e.project(c.tenant)
	long := strings.Repeat("a", 1001)
	for _, q := range []string{
		"mrn=%zz", "mrn=A;name=B", "name=%FF%FE", "name=Lo%C0%AF", "name=%ED%A0%80", "name=Lo%C3",
		"mrn=A&mrn=B", "name=" + long, "nmae=lovelace", "limit=", "limit=+5", "limit=05", "limit=201", "%zz=1",
		"name=a%00b", "mrn=A%0AB", // a NUL made PostgreSQL fail the search: 500
	} {
		e.do(http.MethodGet, "/v1/patients?"+q, c.token, nil).wantProblem(t, http.StatusBadRequest, chartstream.EINVALID)
	}
	for _, q := range []string{
		"name=%zz", "name=a;birthdate=1990-01-02", "name=%FF", "name=a&name=b", "name=" + long, "_count=+5", "_count=0",
		"nmae=lovelace", "name=a%00b", "identifier=a%00b",
	} {
		e.do(http.MethodGet, "/fhir/R4/Patient?"+q, c.token, nil).wantOutcome(t, http.StatusBadRequest, "invalid")
	}
	obs := "/fhir/R4/Observation?patient=" + c.patient.String()
	e.do(http.MethodGet, obs+"&date=ge2025-01-01&date=lt2026-01-01", c.token, nil).wantFHIR(t, http.StatusOK, "Bundle")
	e.do(http.MethodGet, obs+"&date=ge2025-01-01&date=lt2026-01-01&date=2025", c.token, nil).wantOutcome(t, http.StatusBadRequest, "invalid")
	// Routes that take no parameters refuse them rather than ignore them.
	e.do(http.MethodGet, "/v1/encounters?location=a%00b", c.token, nil).wantProblem(t, http.StatusBadRequest, chartstream.EINVALID)
	e.do(http.MethodPost, "/v1/patients/search", c.token, `{"name":"a\u0000b"}`).wantProblem(t, http.StatusBadRequest, chartstream.EINVALID)
	e.do(http.MethodGet, "/v1/patients/"+c.patient.String()+"?fields=name", c.token, nil).wantProblem(t, http.StatusBadRequest, chartstream.EINVALID)
	e.do(http.MethodGet, "/fhir/R4/Patient/"+c.patient.String()+"?_format=xml", c.token, nil).wantOutcome(t, http.StatusBadRequest, "invalid")
	// Still fine: plain values, and FHIR's empty parameters (ignored).
	e.do(http.MethodGet, "/v1/patients?name=lovelace&limit=5", c.token, nil).want(t, http.StatusOK)
	e.do(http.MethodGet, "/fhir/R4/Patient?name=&_count=5", c.token, nil).wantFHIR(t, http.StatusOK, "Bundle")
}

// A path id is a UUID as the API writes it. Other spellings of the same
// UUID (braces, urn:uuid:, no dashes) name nothing, as any unknown id;
// a value that is not UTF-8 or is far too long is malformed input, 400.
func TestPathIDsAreCanonicalUUIDs(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	e.project(c.tenant)
	id := c.patient.String()
	e.do(http.MethodGet, "/v1/patients/"+id, c.token, nil).want(t, http.StatusOK)
	e.do(http.MethodGet, "/v1/patients/"+strings.ToUpper(id), c.token, nil).want(t, http.StatusOK)
	for _, other := range []string{"{" + id + "}", "urn:uuid:" + id, strings.ReplaceAll(id, "-", "")} {
		e.do(http.MethodGet, "/v1/patients/"+other, c.token, nil).wantProblem(t, http.StatusNotFound, chartstream.ENOTFOUND)
		e.do(http.MethodGet, "/fhir/R4/Patient/"+other, c.token, nil).wantOutcome(t, http.StatusNotFound, "not-found")
	}
	for _, bad := range []string{"%FF%FE", id[:30] + "%C3", strings.Repeat("a", 65)} {
		e.do(http.MethodGet, "/v1/patients/"+bad, c.token, nil).wantProblem(t, http.StatusBadRequest, chartstream.EINVALID).wantField(t, "id")
		e.do(http.MethodPost, "/v1/patients/"+id+"/allergies/"+bad+"/refute", c.token, nil).
			wantProblem(t, http.StatusBadRequest, chartstream.EINVALID).wantField(t, "aid")
		e.do(http.MethodGet, "/fhir/R4/Observation?patient="+bad, c.token, nil).wantOutcome(t, http.StatusBadRequest, "invalid")
	}
}

// The headers the API reads are given once, in UTF-8, within their
// length and well-formed. Before, a malformed X-Request-ID or
// X-Correlation-ID was replaced by a fresh one, a malformed consistency
// token was ignored (the read did not wait), and of two If-Match headers
// the first counted.
func TestParsedHeadersAreStrict(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	e.project(c.tenant)
	chartPath := "/v1/patients/" + c.patient.String()
	event := uuid.MustParse("0b4f6a0e-8c1d-4e7a-9d57-2f1c3b5a6e90")
	for _, h := range [][]string{
		{"X-Request-ID", "has spaces"},
		{"X-Request-ID", strings.Repeat("a", 65)},
		{"X-Correlation-ID", "a/b"},
		{"X-Client", "\xff"},
		{"X-Consistency-Token", "bogus"},
		{"X-Consistency-Token", base64.RawURLEncoding.EncodeToString([]byte("v1:1"))},                                  // a global position: no longer taken
		{"X-Consistency-Token", base64.RawURLEncoding.EncodeToString([]byte("v2:" + strings.ToUpper(event.String())))}, // the event, spelt otherwise
		{"X-Consistency-Token", api.ConsistencyToken(event) + "=="},                                                    // padded
		{"Idempotency-Key", "two words"},
	} {
		r := e.do(http.MethodGet, chartPath, c.token, nil, h...).wantProblem(t, http.StatusBadRequest, chartstream.EINVALID)
		r.wantField(t, h[0])
		if h[0] == "X-Request-ID" && r.Header.Get("X-Request-ID") == h[1] {
			t.Errorf("a refused X-Request-ID is echoed")
		}
	}
	before := e.eventCount(c.tenant)
	patch := map[string]any{"sex": "other"}
	for _, v := range []string{"1", `"01"`, `"+1"`, `""1""`, `W/"1`, `"1", "2"`} {
		e.do(http.MethodPatch, chartPath, c.token, patch, "If-Match", v).wantProblem(t, http.StatusBadRequest, chartstream.EINVALID).wantField(t, "If-Match")
	}
	// Two If-Match header lines: net/http keeps both, Get reads the first.
	req, err := http.NewRequest(http.MethodPatch, e.url+chartPath, strings.NewReader(`{"sex":"other"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Add("If-Match", `"1"`)
	req.Header.Add("If-Match", `"99"`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("two If-Match headers: %d, want 400", resp.StatusCode)
	}
	e.wantEvents(c.tenant, before, "after refused headers")
	etag := e.do(http.MethodGet, chartPath, c.token, nil, "X-Consistency-Token", api.ConsistencyToken(event), "X-Request-ID", "req-1").want(t, http.StatusOK).Header.Get("ETag")
	e.do(http.MethodPatch, chartPath, c.token, patch, "If-Match", "W/"+etag, "X-Correlation-ID", "corr-1", "X-Client", "ward-app").want(t, http.StatusOK)
}
