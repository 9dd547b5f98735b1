package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/testkit"
)

// searchResults is how many results a search's answer holds: a page's
// items or a Bundle's entries.
func searchResults(t *testing.T, r reply) int {
	t.Helper()
	if items, ok := r.Body["items"].([]any); ok {
		return len(items)
	}
	if r.Body["resourceType"] == "Bundle" {
		return len(entries(r.Body))
	}
	t.Fatalf("not a search's answer: %s", r.Raw)
	return 0
}

// sendExample sends a route's example body in its media type.
func (e *apiEnv) sendExample(method, path, token string, example any, form bool) reply {
	e.t.Helper()
	if form {
		return e.do(method, path, token, example.(url.Values).Encode(), "Content-Type", "application/x-www-form-urlencoded")
	}
	return e.do(method, path, token, example)
}

// The searches by POST find what the GET forms find, and, generated from
// the route table so a new one is covered the day it is added, only in the
// caller's tenant: tenant A's clinician finds A's patient with the route's
// example, tenant B's finds nothing.
func TestSearchesByPostFindOnlyTheCallersPatients(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	a := e.newChart() // Ada Lovelace
	e.project(a.tenant)
	_, tokenB := e.newTenant(chartstream.RoleClinician)
	n := 0
	for _, r := range e.server.RouteTable() {
		if !r.Read || r.Method == http.MethodGet || strings.Contains(r.Path, ":") {
			continue
		}
		n++
		form := r.RequestType != ""
		if got := searchResults(t, e.sendExample(r.Method, r.Path, a.token, r.Example, form).want(t, http.StatusOK)); got != 1 {
			t.Errorf("%s %s as tenant A: %d results, want A's patient", r.Method, r.Path, got)
		}
		if got := searchResults(t, e.sendExample(r.Method, r.Path, tokenB, r.Example, form).want(t, http.StatusOK)); got != 0 {
			t.Errorf("%s %s as tenant B: %d of A's patients", r.Method, r.Path, got)
		}
	}
	if n < 2 {
		t.Fatalf("%d searches by POST in the route table, want both", n)
	}
	// The same answers as the GET forms, and every search parameter works
	// in the body.
	mrn := e.do(http.MethodGet, "/v1/patients/"+a.patient.String(), a.token, nil).want(t, http.StatusOK).Body["mrn"].(string)
	get := e.do(http.MethodGet, "/v1/patients?birth_date=1990-01-02&name=lovelace&mrn="+mrn, a.token, nil).want(t, http.StatusOK)
	post := e.do(http.MethodPost, "/v1/patients/search", a.token, map[string]any{"mrn": mrn, "name": "lovelace", "birth_date": "1990-01-02"}).want(t, http.StatusOK)
	if string(get.Raw) != string(post.Raw) || searchResults(t, post) != 1 {
		t.Errorf("GET answers %s, POST %s", get.Raw, post.Raw)
	}
	form := url.Values{"identifier": {mrn}, "name": {"lovelace"}, "birthdate": {"1990-01-02"}}
	fhirGet := e.do(http.MethodGet, "/fhir/R4/Patient?"+form.Encode(), a.token, nil).wantFHIR(t, http.StatusOK, "Bundle")
	fhirPost := e.sendExample(http.MethodPost, "/fhir/R4/Patient/_search", a.token, form, true).wantFHIR(t, http.StatusOK, "Bundle")
	if len(entries(fhirGet)) != 1 || len(entries(fhirPost)) != 1 {
		t.Errorf("FHIR GET finds %d, POST %d, want the patient", len(entries(fhirGet)), len(entries(fhirPost)))
	}
	// A search by POST keeps its parameters out of URLs, its links too.
	for _, l := range fhirPost["link"].([]any) {
		if u := l.(map[string]any)["url"].(string); strings.Contains(u, mrn) || strings.Contains(u, "lovelace") {
			t.Errorf("a link of a search by POST carries its parameters: %s", u)
		}
	}
	// Their parameters go in the body only, and they are reads: no
	// events, whatever the Idempotency-Key.
	before := e.eventCount(a.tenant)
	e.do(http.MethodPost, "/v1/patients/search?name=lovelace", a.token, nil).wantProblem(t, http.StatusBadRequest, chartstream.EINVALID)
	e.do(http.MethodPost, "/fhir/R4/Patient/_search?name=lovelace", a.token, "", "Content-Type", "application/x-www-form-urlencoded").
		wantOutcome(t, http.StatusBadRequest, "invalid")
	e.do(http.MethodPost, "/v1/patients/search", a.token, map[string]any{"name": "lovelace"}, "Idempotency-Key", "k-1").want(t, http.StatusOK)
	e.do(http.MethodPost, "/v1/patients/search", e.token(a.tenant, chartstream.RoleAuditor), map[string]any{"name": "lovelace"}).want(t, http.StatusOK)
	e.wantEvents(a.tenant, before, "after searches")
}

// A POST search pages like the GET: the next cursor goes back in the body.
func TestSearchByPostPages(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	tenant, tok := e.newTenant(chartstream.RoleClinician)
	for range 3 {
		e.do(http.MethodPost, "/v1/patients", tok, newPatient()).want(t, http.StatusCreated)
	}
	e.project(tenant)
	seen := map[string]bool{}
	body := map[string]any{"name": "lovelace", "limit": 2}
	for page := 0; page < 3; page++ {
		r := e.do(http.MethodPost, "/v1/patients/search", tok, body).want(t, http.StatusOK)
		for _, it := range r.Body["items"].([]any) {
			seen[it.(map[string]any)["patient_id"].(string)] = true
		}
		next, _ := r.Body["next_cursor"].(string)
		if next == "" {
			break
		}
		body["cursor"] = next
	}
	if len(seen) != 3 {
		t.Errorf("paging found %d patients, want 3", len(seen))
	}
	next := e.sendExample(http.MethodPost, "/fhir/R4/Patient/_search", tok, url.Values{"name": {"lovelace"}, "_count": {"2"}}, true).
		wantFHIR(t, http.StatusOK, "Bundle")
	link := e.nextPath(next)
	u, err := url.Parse(link)
	if err != nil || !strings.HasSuffix(u.Path, "/Patient/_search") || u.Query().Get("_cursor") == "" {
		t.Fatalf("next link %q, want Patient/_search with a _cursor", link)
	}
	rest := e.sendExample(http.MethodPost, "/fhir/R4/Patient/_search", tok,
		url.Values{"name": {"lovelace"}, "_count": {"2"}, "_cursor": {u.Query().Get("_cursor")}}, true).wantFHIR(t, http.StatusOK, "Bundle")
	if n := len(entries(rest)); n != 1 {
		t.Errorf("the second page holds %d, want 1", n)
	}
}

// A request's log line names its route, never its query: GET searches
// by name, birth date or MRN stay for compatibility, and their values
// must not reach the logs.
func TestRequestLogsCarryNoQueryValues(t *testing.T) {
	t.Parallel()
	var log testkit.Buffer
	e := newAPIEnvWith(t, withLog(&log))
	_, tok := e.newTenant(chartstream.RoleClinician)
	phi := []string{"Zyxwvut", "MRN-Q-4711", "1985-12-31", "Qwertz"}
	for _, path := range []string{
		"/v1/patients?name=Zyxwvut&mrn=MRN-Q-4711&birth_date=1985-12-31",
		"/fhir/R4/Patient?name=Zyxwvut&identifier=MRN-Q-4711&birthdate=1985-12-31",
		"/v1/patients?name=Zyxwvut&nmae=Qwertz",          // refused
		"/fhir/R4/Patient?name=Zyxwvut&birthdate=Qwertz", // refused
	} {
		e.do(http.MethodGet, path, tok, nil)
	}
	out := log.String()
	if strings.Count(out, `"route":"/v1/patients"`) != 2 || strings.Count(out, `"route":"/fhir/R4/Patient"`) != 2 {
		t.Fatalf("the log lacks the searches' lines:\n%s", out)
	}
	for _, s := range phi {
		if strings.Contains(out, s) {
			t.Errorf("the log contains %q:\n%s", s, out)
		}
	}
}
