package api_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/ratelimit"
	"github.com/chartstream/chartstream/internal/testkit"
)

// ifMatch is an If-Match header pinning a version.
func ifMatch(version int64) []string {
	return []string{"If-Match", strconv.Quote(strconv.FormatInt(version, 10))}
}

// Requests the server cannot take are refused before any command runs,
// each with its own status.
func TestMalformedRequestsAreRefused(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	unknown := newPatient()
	unknown["nickname"] = "Ada"
	cases := []struct {
		name         string
		method, path string
		body         any
		headers      []string
		status       int
		code         string
	}{
		{"unknown field", http.MethodPost, "/v1/patients", unknown, nil, http.StatusBadRequest, chartstream.EINVALID},
		{"text/plain", http.MethodPost, "/v1/patients", `{"mrn":"A-1"}`, []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType, chartstream.EUNSUPPORTED},
		{"no content type", http.MethodPost, "/v1/patients", `{"mrn":"A-1"}`, []string{"Content-Type", ""}, http.StatusUnsupportedMediaType, chartstream.EUNSUPPORTED},
		{"body over 1 MiB", http.MethodPost, "/v1/patients", `{"mrn":"` + strings.Repeat("A", 1<<20) + `"}`, nil, http.StatusRequestEntityTooLarge, chartstream.ETOOLARGE},
		{"malformed JSON", http.MethodPost, "/v1/patients", `{"mrn":`, nil, http.StatusBadRequest, chartstream.EINVALID},
		{"trailing data", http.MethodPost, "/v1/patients", `{} {}`, nil, http.StatusBadRequest, chartstream.EINVALID},
		{"empty body", http.MethodPost, "/v1/patients", ``, nil, http.StatusBadRequest, chartstream.EINVALID},
		{"body on a body-less command", http.MethodPost, "/v1/encounters/" + c.encounter.String() + "/discharge", `{"now":true}`, nil, http.StatusBadRequest, chartstream.EINVALID},
		{"malformed patient id", http.MethodPost, "/v1/patients/not-a-uuid/allergies", map[string]any{}, nil, http.StatusNotFound, chartstream.ENOTFOUND},
		{"malformed encounter id", http.MethodPost, "/v1/encounters/42/discharge", nil, nil, http.StatusNotFound, chartstream.ENOTFOUND},
		{"malformed allergy id", http.MethodPost, "/v1/patients/" + c.patient.String() + "/allergies/x/refute", nil, nil, http.StatusNotFound, chartstream.ENOTFOUND},
		{"malformed If-Match", http.MethodPatch, "/v1/patients/" + c.patient.String(), map[string]any{"sex": "other"}, []string{"If-Match", `"abc"`}, http.StatusBadRequest, chartstream.EINVALID},
		{"unknown route", http.MethodPost, "/v1/prescriptions", map[string]any{}, nil, http.StatusNotFound, chartstream.ENOTFOUND},
	}
	before := e.eventCount(c.tenant)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.do(tc.method, tc.path, c.token, tc.body, tc.headers...).wantProblem(t, tc.status, tc.code)
		})
	}
	e.do(http.MethodPost, "/v1/patients", c.token, unknown).wantField(t, "nickname")
	e.do(http.MethodPatch, "/v1/patients/"+c.patient.String(), c.token, map[string]any{"sex": "other"}, "If-Match", "abc").wantField(t, "If-Match")
	e.wantEvents(c.tenant, before, "after refused requests")
}

// If-Match pins the version a change applies to: a stale one is 412 and
// changes nothing, the current one goes through.
func TestIfMatchGuardsAgainstLostUpdates(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	tenant, tok := e.newTenant(chartstream.RoleClinician)
	id := e.do("POST", "/v1/patients", tok, newPatient()).want(t, http.StatusCreated).Result.ID
	p := "/v1/patients/" + id.String()
	r := e.do(http.MethodPatch, p, tok, map[string]any{"sex": "other"}, ifMatch(1)...).want(t, http.StatusOK)
	if r.Header.Get("ETag") != `"2"` || r.Result.Version != 2 {
		t.Errorf("ETag %s version %d after one change, want 2", r.Header.Get("ETag"), r.Result.Version)
	}
	e.do(http.MethodPatch, p, tok, map[string]any{"sex": "unknown"}, ifMatch(1)...).wantProblem(t, http.StatusPreconditionFailed, chartstream.EPRECONDITION)
	e.wantEvents(tenant, 2, "after the stale change")
	e.do(http.MethodPatch, p, tok, map[string]any{"sex": "unknown"}, ifMatch(2)...).want(t, http.StatusOK)
	e.do(http.MethodPost, p+"/allergies", tok, map[string]any{
		"substance": map[string]any{"code": "1191", "system": rxNorm}, "criticality": "low",
	}, ifMatch(2)...).wantProblem(t, http.StatusPreconditionFailed, chartstream.EPRECONDITION)
}

// Over its rate a tenant gets 429 with Retry-After; another tenant does not
// notice.
func TestRateLimitIsPerTenant(t *testing.T) {
	t.Parallel()
	busy, calm := testkit.MustTenant(t), testkit.MustTenant(t)
	e := newAPIEnvWith(t, withRateLimit(func(c *ratelimit.Config) {
		c.Tenants = map[chartstream.TenantID]ratelimit.Limit{busy: {PerSecond: 1, Burst: 2}}
	}))
	tok := e.token(busy, chartstream.RoleClinician)
	var limited reply
	for range 20 {
		// An invalid registration: cheap, and never a write.
		if limited = e.do(http.MethodPost, "/v1/patients", tok, map[string]any{"mrn": "X"}); limited.Status != http.StatusBadRequest {
			break
		}
	}
	limited.wantProblem(t, http.StatusTooManyRequests, chartstream.ERATELIMITED)
	if s, err := strconv.Atoi(limited.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q, want whole seconds", limited.Header.Get("Retry-After"))
	}
	e.do(http.MethodPost, "/v1/patients", e.token(calm, chartstream.RoleClinician), newPatient()).want(t, http.StatusCreated)
}

// Error bodies never repeat what was submitted: a patient's name, birth
// date, contact or MRN.
func TestErrorBodiesCarryNoPHI(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	tenant, tok := e.newTenant(chartstream.RoleClinician)
	phi := []string{"Zyxwvut", "31/12/1985", "19851231", "Qwertz", "MRN-PHI-4242"}
	patient := func(edit func(map[string]any)) map[string]any {
		b := map[string]any{
			"mrn": "MRN-PHI-4242", "name": map[string]any{"family": "Zyxwvut", "given": []string{"Qwertz"}},
			"birth_date": "1985-12-31", "sex": "female",
		}
		edit(b)
		return b
	}
	e.do(http.MethodPost, "/v1/patients", tok, patient(func(map[string]any) {})).want(t, http.StatusCreated)
	bodies := []any{
		patient(func(b map[string]any) { b["mrn"], b["birth_date"] = "MRN-PHI-4243", "31/12/1985" }),
		patient(func(b map[string]any) { b["mrn"] = "MRN PHI 4242" }),
		patient(func(b map[string]any) { b["name"] = map[string]any{"family": strings.Repeat("Zyxwvut", 20)} }),
		patient(func(b map[string]any) { b["contact"] = map[string]any{"email": "Zyxwvut at home", "phone": "Qwertz"} }),
		patient(func(b map[string]any) { b["sex"] = "Zyxwvut" }),
		patient(func(b map[string]any) { b["birth_date"] = map[string]any{"Zyxwvut": "31/12/1985"} }),
		patient(func(b map[string]any) { b["birth_date"] = 19851231 }),
		patient(func(map[string]any) {}), // the MRN is taken
		`{"name":{"family":"Zyxwvut"`,
	}
	for i, body := range bodies {
		r := e.do(http.MethodPost, "/v1/patients", tok, body)
		if r.Status < 400 || r.Status >= 500 {
			t.Errorf("body %d: status %d, want a 4xx", i, r.Status)
		}
		for _, s := range phi {
			if strings.Contains(string(r.Raw), s) {
				t.Errorf("body %d: the %d answer repeats %q: %s", i, r.Status, s, r.Raw)
			}
		}
	}
	e.wantEvents(tenant, 1, "after one registration and refusals")
}

// The log says what happened to which request, never to whom: no name,
// birth date, phone or free text, whether commands succeed or fail.
func TestLogsCarryNoPHI(t *testing.T) {
	t.Parallel()
	var log testkit.Buffer
	e := newAPIEnvWith(t, withLog(&log))
	tenant, tok := e.newTenant(chartstream.RoleClinician)
	phi := []string{"Zyxwvut", "Qwertz", "1985-12-31", "7946 0999", "hives after the second dose", "MRN-LOG-777", "ward gossip"}
	reg := map[string]any{
		"mrn": "MRN-LOG-777", "name": map[string]any{"family": "Zyxwvut", "given": []string{"Qwertz"}},
		"birth_date": "1985-12-31", "sex": "female", "contact": map[string]any{"phone": "+44 20 7946 0999"},
	}
	id := e.do(http.MethodPost, "/v1/patients", tok, reg).want(t, http.StatusCreated).Result.ID
	p := "/v1/patients/" + id.String()
	e.do(http.MethodPost, "/v1/patients", tok, reg).want(t, http.StatusConflict)
	bad := map[string]any{"mrn": "MRN-LOG-778", "name": reg["name"], "birth_date": "31/12/1985", "sex": "female", "contact": reg["contact"]}
	e.do(http.MethodPost, "/v1/patients", tok, bad).want(t, http.StatusBadRequest)
	e.do(http.MethodPost, "/v1/patients", tok, bad, "Content-Type", "text/plain").want(t, http.StatusUnsupportedMediaType)
	allergy := map[string]any{
		"substance": map[string]any{"code": "7980", "system": rxNorm}, "criticality": "high", "reaction": "hives after the second dose",
	}
	e.do(http.MethodPost, p+"/allergies", tok, allergy).want(t, http.StatusCreated)
	e.do(http.MethodPost, p+"/allergies", tok, allergy).want(t, http.StatusConflict)
	e.do(http.MethodPost, p+"/medication-orders", tok, prescription("7980", "")).want(t, http.StatusUnprocessableEntity)
	e.do(http.MethodPost, p+"/medication-orders", tok, prescription("7980", "ward gossip")).want(t, http.StatusCreated)
	e.do(http.MethodPatch, p, tok, map[string]any{"contact": map[string]any{"phone": "+44 20 7946 0999"}}, ifMatch(1)...).want(t, http.StatusPreconditionFailed)
	e.do(http.MethodPost, "/v1/patients", "", reg).want(t, http.StatusUnauthorized)

	out := log.String()
	if !strings.Contains(out, `"status":422`) || !strings.Contains(out, tenant.String()) {
		t.Fatalf("the log lacks the requests' lines:\n%s", out)
	}
	for _, s := range phi {
		if strings.Contains(out, s) {
			t.Errorf("the log contains %q:\n%s", s, out)
		}
	}
}

// No request body, however wrong, makes the server fail: each is a 4xx.
func TestGarbageBodiesAreNever500(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	tenant, tok := e.newTenant(chartstream.RoleClinician)
	bodies := map[string]string{
		"array":              `[]`,
		"string":             `"x"`,
		"number":             `5`,
		"null":               `null`,
		"mrn a number":       `{"mrn":5}`,
		"name a string":      `{"name":"x"}`,
		"given not an array": `{"name":{"family":"x","given":"y"}}`,
		"deep arrays":        strings.Repeat("[", 20000) + strings.Repeat("]", 20000),
		"deep objects":       strings.Repeat(`{"name":`, 20000) + "1" + strings.Repeat("}", 20000),
		"invalid UTF-8":      "\xff\xfe\xfd",
		"invalid UTF-8 name": "{\"mrn\":\"A-1\",\"name\":{\"family\":\"\xff\xfe\"},\"birth_date\":\"1990-01-02\",\"sex\":\"x\"}",
		"NUL in a string":    `{"mrn":"A\u0000B","name":{"family":"x"},"birth_date":"1990-01-02","sex":"female"}`,
		"huge number":        `{"mrn":"A-1","name":{"family":"x"},"birth_date":1e999}`,
		"duplicate keys":     `{"mrn":"A-1","mrn":{}}`,
		"BOM":                "\ufeff{}",
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			r := e.do(http.MethodPost, "/v1/patients", tok, body)
			if r.Status < 400 || r.Status >= 500 {
				t.Errorf("status %d, want a 4xx: %s", r.Status, r.Raw)
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Errorf("content type %q, want problem+json", ct)
			}
		})
	}
	e.wantEvents(tenant, 0, "after garbage")
}
