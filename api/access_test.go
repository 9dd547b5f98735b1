package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/internal/accesslog"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
)

// accessEntries returns the tenant's access entries, as its app role
// reads them, once there are at least want (failing after 10 s).
func (e *apiEnv) accessEntries(tenant chartstream.TenantID, want int) []accesslog.Entry {
	e.t.Helper()
	var out []accesslog.Entry
	eventually(e.t, 10*time.Second, fmt.Sprintf("%d access entries are written", want), func() bool {
		out = out[:0]
		for after := int64(0); ; {
			page, err := accesslog.List(testkit.Context(e.t), testkit.MustAppPool(e.t), tenant, accesslog.ListParams{After: after, Limit: 1000})
			if err != nil {
				e.t.Fatal(err)
			}
			out = append(out, page.Items...)
			if after = page.Next; after == 0 {
				break
			}
		}
		return len(out) >= want
	})
	return out
}

// observe records a heart rate for the chart's patient and returns its id.
func (e *apiEnv) observe(c chart) uuid.UUID {
	e.t.Helper()
	return e.do(http.MethodPost, "/v1/patients/"+c.patient.String()+"/observations", c.token, map[string]any{
		"code": "8867-4", "system": "http://loinc.org", "value": 72, "unit": "/min", "effective_at": "2025-03-01T10:05:00Z",
	}).want(e.t, http.StatusCreated).Result.ID
}

// readTarget is a URL at which a read route answers 200 for the chart:
// its path ids (a FHIR read's own resource), and the patient a FHIR
// search of one patient's records requires.
func readTarget(r api.RouteInfo, c chart, observation uuid.UUID) string {
	for typ, id := range map[string]uuid.UUID{"Observation": observation, "Encounter": c.encounter, "MedicationRequest": c.medication,
		"AllergyIntolerance": c.allergy, "Condition": c.condition} {
		if r.Path == "/fhir/R4/"+typ+"/:id" {
			return "/fhir/R4/" + typ + "/" + id.String()
		}
	}
	return c.path(r.Path) + baseQuery(r.Path, c)
}

// TestEveryPHIRouteWritesAnAccessEntry is generated from the route table:
// every read that declares PHI, called successfully, writes exactly one
// entry naming who (subject, roles), whose PHI (the chart's patient, or
// the whole tenant), the route, the purpose of use and the request id;
// every read that declares none writes none and holds no PHI. A route
// added tomorrow is covered by being in the table (and refused at start
// if it declares neither).
func TestEveryPHIRouteWritesAnAccessEntry(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	observation := e.observe(c)
	e.project(c.tenant)
	token := e.tokenFor(c.tenant, "reader-x", chartstream.RoleClinician, chartstream.RoleNurse, chartstream.RoleAuditor, chartstream.RoleAnalyst)
	phiRoutes := map[string]api.RouteInfo{}
	for i, r := range e.server.RouteTable() {
		if !r.Read {
			continue
		}
		id := fmt.Sprintf("access-%d", i)
		ct, body := "application/json", r.Example
		if form, ok := r.Example.(url.Values); ok {
			ct, body = r.RequestType, form.Encode()
		}
		got := e.do(r.Method, readTarget(r, c, observation), token, body, "X-Request-ID", id, "Content-Type", ct, api.HeaderPurposeOfUse, "HOPERAT")
		if got.Status != http.StatusOK {
			t.Errorf("%s %s: %d, want 200 (the check needs a successful read): %.300s", r.Method, r.Path, got.Status, got.Raw)
			continue
		}
		switch r.PHI {
		case "patient", "named":
			phiRoutes[id] = r
		case "none":
			if bytes.Contains(got.Raw, []byte("Lovelace")) {
				t.Errorf("%s %s declares no PHI but answers a patient's name", r.Method, r.Path)
			}
		default:
			t.Errorf("%s %s declares PHI %q", r.Method, r.Path, r.PHI)
		}
	}
	if len(phiRoutes) < 20 {
		t.Fatalf("%d PHI routes called, want every read of charts, searches, FHIR, history, export and time travel", len(phiRoutes))
	}
	// A read that returns no PHI (an unknown patient) writes nothing.
	e.do(http.MethodGet, "/v1/patients/"+uuid.NewString(), token, nil, "X-Request-ID", "access-unknown").want(t, http.StatusNotFound)
	entries := e.accessEntries(c.tenant, len(phiRoutes))
	seen := map[string]int{}
	for _, en := range entries {
		seen[en.RequestID]++
		r, ok := phiRoutes[en.RequestID]
		if !ok {
			t.Errorf("an entry for request %s, which was no successful PHI read: %+v", en.RequestID, en)
			continue
		}
		slices.Sort(en.Roles)
		if en.Route != r.Method+" "+r.Path || en.Actor != "reader-x" || en.Purpose != "HOPERAT" ||
			!slices.Equal(en.Roles, []string{"analyst", "auditor", "clinician", "nurse"}) || time.Since(en.AccessedAt) > time.Minute {
			t.Errorf("%s %s wrote %+v", r.Method, r.Path, en)
		}
		if !slices.Contains(en.Patients, c.patient) && !en.AllPatients {
			t.Errorf("%s %s wrote an entry naming %v, not the patient whose PHI it answered", r.Method, r.Path, en.Patients)
		}
	}
	for id, r := range phiRoutes {
		if seen[id] != 1 {
			t.Errorf("%s %s wrote %d entries, want 1", r.Method, r.Path, seen[id])
		}
	}
}

// The purpose of use is TREAT unless the caller says otherwise, with a
// code of HL7's PurposeOfUse value set; any other value is refused.
func TestPurposeOfUse(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	e.project(c.tenant)
	p := "/v1/patients/" + c.patient.String()
	e.do(http.MethodGet, p, c.token, nil, "X-Request-ID", "purpose-default").want(t, http.StatusOK)
	e.do(http.MethodGet, p, c.token, nil, "X-Request-ID", "purpose-btg", api.HeaderPurposeOfUse, "BTG").want(t, http.StatusOK)
	for _, bad := range []string{"treat", "TREATMENT", "TREAT,ETREAT", "PurposeOfUse"} {
		e.do(http.MethodGet, p, c.token, nil, api.HeaderPurposeOfUse, bad).
			wantProblem(t, http.StatusBadRequest, chartstream.EINVALID).wantField(t, api.HeaderPurposeOfUse)
	}
	got := map[string]string{}
	for _, en := range e.accessEntries(c.tenant, 2) {
		got[en.RequestID] = en.Purpose
	}
	if got["purpose-default"] != "TREAT" || got["purpose-btg"] != "BTG" || len(got) != 2 {
		t.Errorf("purposes recorded %v", got)
	}
}

// While the access log cannot be written (its database connection cut)
// PHI reads are refused with 503, JSON and FHIR alike, while commands go
// on; once it can, reads are served again and every read served, before
// and after, has its entry: none lost.
func TestPHIReadsFailClosedWhenTheAccessLogCannotWrite(t *testing.T) {
	t.Parallel()
	proxy, pool := testkit.MustProxiedPool(t, "DATABASE_URL")
	e := newAPIEnvWith(t, withAccessLogPool(pool))
	c := e.newChart()
	e.project(c.tenant)
	p := "/v1/patients/" + c.patient.String()
	served := 0
	read := func() reply {
		r := e.do(http.MethodGet, p, c.token, nil)
		if r.Status == http.StatusOK {
			served++
		}
		return r
	}
	read().want(t, http.StatusOK)
	// Cut the log's connection only once the read's entry is written: an
	// entry whose COMMIT reached the database but whose answer the cut
	// lost is written again (the log writes at least once), one more than
	// the reads served.
	eventually(t, 10*time.Second, "the entry is written", func() bool { return e.access.Pending() == 0 })
	proxy.Refuse(true)
	eventually(t, 10*time.Second, "PHI reads are refused", func() bool { return read().Status == http.StatusServiceUnavailable })
	r := read().wantProblem(t, http.StatusServiceUnavailable, chartstream.EUNAVAILABLE)
	if r.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if bytes.Contains(r.Raw, []byte("Lovelace")) {
		t.Errorf("the refusal holds PHI: %s", r.Raw)
	}
	e.do(http.MethodGet, "/fhir/R4/Patient/"+c.patient.String(), c.token, nil).wantOutcome(t, http.StatusServiceUnavailable, "transient")
	e.observe(c) // commands do not read PHI: they go on
	proxy.Refuse(false)
	eventually(t, 10*time.Second, "PHI reads are served again", func() bool { return read().Status == http.StatusOK })
	if n := len(e.accessEntries(c.tenant, served)); n != served {
		t.Errorf("%d entries for %d reads served", n, served)
	}
}

// accessRows counts a tenant's access entries as the database holds them.
func accessRows(t *testing.T, tenant chartstream.TenantID) int {
	t.Helper()
	var n int
	ctx := testkit.Context(t)
	err := postgres.InTenantTx(ctx, testkit.MustAppPool(t), tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM phi_access_log`).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// An auditor lists the access log by patient, actor and time, and sees
// only the tenant's own entries.
func TestAuditorListsTheAccessLog(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	e.project(c.tenant)
	nurse := e.tokenFor(c.tenant, "nurse-n", chartstream.RoleNurse)
	e.do(http.MethodGet, "/v1/patients/"+c.patient.String(), nurse, nil).want(t, http.StatusOK)
	e.do(http.MethodGet, "/v1/patients/"+c.patient.String()+"/medication-orders", c.token, nil).want(t, http.StatusOK)
	e.accessEntries(c.tenant, 2)
	auditor := e.tokenFor(c.tenant, "auditor-a", chartstream.RoleAuditor)
	list := func(query string) []any {
		t.Helper()
		r := e.do(http.MethodGet, "/v1/audit/access"+query, auditor, nil).want(t, http.StatusOK)
		items, _ := r.Body["items"].([]any)
		return items
	}
	if items := list("?patient=" + c.patient.String()); len(items) != 2 {
		t.Errorf("by patient: %d entries, want 2", len(items))
	}
	if items := list("?actor=nurse-n&since=" + time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)); len(items) != 1 ||
		at(items[0], "route") != "GET /v1/patients/:id" || at(items[0], "purpose") != "TREAT" {
		t.Errorf("by actor: %v", items)
	}
	if items := list("?since=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); len(items) != 0 {
		t.Errorf("since an hour ahead: %v", items)
	}
	// Listing the log is no PHI read: it adds no entry.
	if n := accessRows(t, c.tenant); n != 2 {
		t.Errorf("%d entries after listing, want 2", n)
	}
	for _, bad := range []struct{ query, field string }{{"?patient=ada", "patient"}, {"?since=yesterday", "since"}, {"?cursor=x", "cursor"}, {"?limit=0", "limit"}} {
		e.do(http.MethodGet, "/v1/audit/access"+bad.query, auditor, nil).wantProblem(t, http.StatusBadRequest, chartstream.EINVALID).wantField(t, bad.field)
	}
	// Another tenant's auditor sees none of it, even naming the patient.
	b, tokenB := e.newTenant(chartstream.RoleAuditor)
	r := e.do(http.MethodGet, "/v1/audit/access?patient="+c.patient.String(), tokenB, nil).want(t, http.StatusOK)
	if strings.Contains(string(r.Raw), c.patient.String()) || strings.Contains(string(r.Raw), "nurse-n") {
		t.Errorf("tenant %s's auditor sees another tenant's entries: %s", b, r.Raw)
	}
}
