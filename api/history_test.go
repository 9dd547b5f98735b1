package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
)

// chartBody is a chart as JSON values, to compare two answers.
func chartBody(t *testing.T, r reply) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// Time travel: the chart at a past instant, rebuilt from the event store,
// equals the chart the projectors had built up to that instant (the read
// model then), and at the present it equals the live read model. Every
// part of the chart changes in between: demographics, an allergy
// refuted, a condition resolved, a vital sign superseded, an order
// stopped, an encounter ended, and new ones recorded.
func TestTimeTravelEqualsTheReadModelOfThen(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	e.observe(c)
	e.project(c.tenant)
	p := "/v1/patients/" + c.patient.String()
	then := e.do(http.MethodGet, p, c.token, nil).want(t, http.StatusOK)
	instant := time.Now().UTC()
	time.Sleep(20 * time.Millisecond) // later commands are recorded after the instant
	e.do(http.MethodPatch, p, c.token, map[string]any{"name": map[string]any{"family": "Byron", "given": []string{"Augusta", "Ada"}}},
		"If-Match", `"`+strconv.FormatInt(int64(then.Body["version"].(float64)), 10)+`"`).want(t, http.StatusOK)
	e.do(http.MethodPost, p+"/allergies/"+c.allergy.String()+"/refute", c.token, nil).want(t, http.StatusOK)
	e.do(http.MethodPost, p+"/conditions/"+c.condition.String()+"/resolve", c.token, nil).want(t, http.StatusOK)
	e.do(http.MethodPost, "/v1/medication-orders/"+c.medication.String()+"/discontinue", c.token, nil).want(t, http.StatusOK)
	e.do(http.MethodPost, "/v1/encounters/"+c.encounter.String()+"/discharge", c.token, nil).want(t, http.StatusOK)
	e.do(http.MethodPost, p+"/observations", c.token, map[string]any{
		"code": "8867-4", "system": "http://loinc.org", "value": 88, "unit": "/min", "effective_at": "2025-03-01T11:00:00Z",
	}).want(t, http.StatusCreated)
	e.do(http.MethodPost, p+"/encounters", c.token, map[string]any{"class": "outpatient", "location": "Clinic 2"}).want(t, http.StatusCreated)
	e.project(c.tenant)
	now := e.do(http.MethodGet, p, c.token, nil).want(t, http.StatusOK)
	if reflect.DeepEqual(chartBody(t, then), chartBody(t, now)) {
		t.Fatal("the chart did not change: the test would prove nothing")
	}
	past := e.do(http.MethodGet, p+"?as_of="+url.QueryEscape(instant.Format(time.RFC3339Nano)), c.token, nil).want(t, http.StatusOK)
	if got, want := chartBody(t, past), chartBody(t, then); !reflect.DeepEqual(got, want) {
		t.Errorf("as of %s:\n%s\nthe read model then:\n%s", instant, past.Raw, then.Raw)
	}
	present := e.do(http.MethodGet, p+"?as_of="+url.QueryEscape(time.Now().UTC().Format(time.RFC3339Nano)), c.token, nil).want(t, http.StatusOK)
	if got, want := chartBody(t, present), chartBody(t, now); !reflect.DeepEqual(got, want) {
		t.Errorf("as of now:\n%s\nthe read model:\n%s", present.Raw, now.Raw)
	}
	// The headers name the last event up to the instant: the observation
	// recorded before it, not anything after (its position sealed, as
	// TestAuditorsAnswersCarryNoGlobalPosition checks).
	pos := past.Header.Get(api.HeaderLastEventPosition)
	recorded, terr := time.Parse(time.RFC3339Nano, past.Header.Get(api.HeaderLastEventRecordedAt))
	if pos == "" || terr != nil || recorded.After(instant) || instant.Sub(recorded) > time.Minute {
		t.Errorf("headers %q %q for an instant of %s", pos, past.Header.Get(api.HeaderLastEventRecordedAt), instant)
	}
	if livePos := present.Header.Get(api.HeaderLastEventPosition); livePos == pos || livePos == "" {
		t.Errorf("as of now the last event is at %q, as of the past at %q", livePos, pos)
	}
	// Before the registration there was no patient; bad instants are 400.
	e.do(http.MethodGet, p+"?as_of=2001-01-01T00:00:00Z", c.token, nil).wantProblem(t, http.StatusNotFound, chartstream.ENOTFOUND)
	for _, bad := range []string{"yesterday", "2025-13-01T00:00:00Z", "2025-01-01"} {
		e.do(http.MethodGet, p+"?as_of="+bad, c.token, nil).wantProblem(t, http.StatusBadRequest, chartstream.EINVALID).wantField(t, "as_of")
	}
	e.do(http.MethodGet, "/v1/patients/"+uuid.NewString()+"?as_of=2030-01-01T00:00:00Z", c.token, nil).wantProblem(t, http.StatusNotFound, chartstream.ENOTFOUND)
}

// The patient's history lists every event of its streams (patient,
// encounter, order), oldest first, each with who and when, in pages.
func TestPatientHistory(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	auditor := e.token(c.tenant, chartstream.RoleAuditor)
	p := "/v1/patients/" + c.patient.String() + "/history"
	// History reads below the gap-free horizon: the newest events show
	// once the transactions open when they committed (other tests') end.
	var r reply
	var items []any
	eventually(t, 10*time.Second, "the history shows the five events", func() bool {
		r = e.do(http.MethodGet, p, auditor, nil).want(t, http.StatusOK)
		items, _ = r.Body["items"].([]any)
		return len(items) >= 5
	})
	streams := map[string]bool{}
	var types []string
	for _, it := range items {
		streams[at(it, "stream", "type").(string)] = true
		types = append(types, at(it, "type").(string))
		if at(it, "metadata", "actor") == nil || at(it, "recorded_at") == nil {
			t.Errorf("an event without who or when: %v", it)
		}
	}
	want := []string{"patient.registered", "patient.allergy_recorded", "patient.condition_diagnosed", "encounter.started", "medication_order.prescribed"}
	if !reflect.DeepEqual(types, want) || len(streams) != 3 || r.Body["next_cursor"] != nil {
		t.Fatalf("history %v over %v, want %v over three kinds of stream", types, streams, want)
	}
	if at(items[0], "payload", "name", "family") != "Lovelace" {
		t.Errorf("the registration's PHI is not opened: %v", items[0])
	}
	first := e.do(http.MethodGet, p+"?limit=2", auditor, nil).want(t, http.StatusOK)
	next, _ := first.Body["next_cursor"].(string)
	second := e.do(http.MethodGet, p+"?limit=2&cursor="+next, auditor, nil).want(t, http.StatusOK)
	if got := append(first.Body["items"].([]any), second.Body["items"].([]any)...); len(got) != 4 || at(got[2], "type") != want[2] {
		t.Errorf("two pages of 2: %v", got)
	}
	e.do(http.MethodGet, p+"?cursor=x", auditor, nil).wantProblem(t, http.StatusBadRequest, chartstream.EINVALID).wantField(t, "cursor")
	e.do(http.MethodGet, p, c.token, nil).wantProblem(t, http.StatusForbidden, chartstream.EFORBIDDEN) // clinicians read charts, not the history
	e.do(http.MethodGet, "/v1/patients/"+uuid.NewString()+"/history", auditor, nil).wantProblem(t, http.StatusNotFound, chartstream.ENOTFOUND)
}

// FHIR history: a Patient's versions, newest first, in a history Bundle
// the strict R4 parser accepts, paged; vread answers one version.
func TestFHIRPatientHistory(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	p := "/v1/patients/" + c.patient.String()
	e.do(http.MethodPatch, p, c.token, map[string]any{"name": map[string]any{"family": "Byron"}}, "If-Match", `"3"`).want(t, http.StatusOK)
	h := "/fhir/R4/Patient/" + c.patient.String() + "/_history"
	// Read below the gap-free horizon, as the patient's history is.
	var body map[string]any
	eventually(t, 10*time.Second, "the history shows the four versions", func() bool {
		body = e.do(http.MethodGet, h, c.token, nil).wantFHIR(t, http.StatusOK, "Bundle")
		return body["total"] == float64(4)
	})
	es := entries(body)
	if body["type"] != "history" || body["total"] != float64(4) || len(es) != 4 {
		t.Fatalf("history Bundle of type %v, total %v, %d entries; want 4 versions", body["type"], body["total"], len(es))
	}
	if at(es[0], "resource", "meta", "versionId") != "4" || at(es[0], "resource", "name") == nil ||
		at(es[3], "resource", "meta", "versionId") != "1" || at(es[3], "request", "method") != "POST" || at(es[3], "response", "status") != "201 Created" {
		t.Errorf("entries, newest first: %v", es)
	}
	if got := at(es[0], "resource", "name").([]any)[0].(map[string]any)["family"]; got != "Byron" {
		t.Errorf("version 4's family name %v, want Byron", got)
	}
	page := e.do(http.MethodGet, h+"?_count=3", c.token, nil).wantFHIR(t, http.StatusOK, "Bundle")
	next := e.do(http.MethodGet, e.nextPath(page), c.token, nil).wantFHIR(t, http.StatusOK, "Bundle")
	if len(entries(page)) != 3 || len(entries(next)) != 1 || at(entries(next)[0], "resource", "meta", "versionId") != "1" {
		t.Errorf("pages of 3: %v then %v", entries(page), entries(next))
	}
	v1 := e.do(http.MethodGet, h+"/1", c.token, nil).wantFHIR(t, http.StatusOK, "Patient")
	if got := at(v1, "name").([]any)[0].(map[string]any)["family"]; got != "Lovelace" || at(v1, "meta", "versionId") != "1" {
		t.Errorf("version 1: %v", v1)
	}
	for _, bad := range []string{"/5", "/0", "/x", "/01"} {
		e.do(http.MethodGet, h+bad, c.token, nil).wantOutcome(t, http.StatusNotFound, "not-found")
	}
	e.do(http.MethodGet, h+"?_cursor=abc", c.token, nil).wantOutcome(t, http.StatusBadRequest, "invalid")
}
