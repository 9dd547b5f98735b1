package api_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/projections/census"
	chartmodel "github.com/chartstream/chartstream/projections/chart"
	"github.com/chartstream/chartstream/projections/observations"
	"github.com/chartstream/chartstream/projections/orders"
	"github.com/chartstream/chartstream/workers"
)

// chart is a tenant with a registered patient and one of everything on it.
type chart struct {
	tenant                                             chartstream.TenantID
	token                                              string
	patient, allergy, condition, encounter, medication uuid.UUID
}

// newChart builds a chart through the API.
func (e *apiEnv) newChart() chart {
	e.t.Helper()
	c := chart{tenant: testkit.MustTenant(e.t)}
	c.token = e.token(c.tenant, chartstream.RoleClinician)
	c.patient = e.do(http.MethodPost, "/v1/patients", c.token, newPatient()).want(e.t, http.StatusCreated).Result.ID
	p := "/v1/patients/" + c.patient.String()
	c.allergy = e.do(http.MethodPost, p+"/allergies", c.token, map[string]any{
		"substance": map[string]any{"code": "7980", "display": "Penicillin G", "system": "http://www.nlm.nih.gov/research/umls/rxnorm"}, "criticality": "high",
	}).want(e.t, http.StatusCreated).Result.ID
	c.condition = e.do(http.MethodPost, p+"/conditions", c.token, map[string]any{
		"code": "44054006", "system": "http://snomed.info/sct", "display": "Type 2 diabetes",
	}).want(e.t, http.StatusCreated).Result.ID
	c.encounter = e.do(http.MethodPost, p+"/encounters", c.token, map[string]any{
		"class": "inpatient", "location": "Ward 3B",
	}).want(e.t, http.StatusCreated).Result.ID
	c.medication = e.do(http.MethodPost, p+"/medication-orders", c.token, map[string]any{
		"medication": map[string]any{"code": "197361", "display": "Amlodipine 5 MG Oral Tablet", "system": "http://www.nlm.nih.gov/research/umls/rxnorm"},
		"dose":       "5 mg", "route": "oral", "frequency": "daily",
	}).want(e.t, http.StatusCreated).Result.ID
	return c
}

// newPatient is a valid registration with a fresh MRN.
func newPatient() map[string]any {
	return map[string]any{
		"mrn": "MRN-" + uuid.NewString()[:8], "name": map[string]any{"family": "Lovelace", "given": []string{"Ada"}},
		"birth_date": "1990-01-02", "sex": "female",
	}
}

// path fills a route's parameters with the chart's ids.
func (c chart) path(route string) string {
	r := strings.NewReplacer(":aid", c.allergy.String(), ":cid", c.condition.String(), ":vid", "1")
	p := r.Replace(route)
	switch {
	case strings.HasPrefix(p, "/v1/encounters/:id"):
		return strings.Replace(p, ":id", c.encounter.String(), 1)
	case strings.HasPrefix(p, "/v1/medication-orders/:id"):
		return strings.Replace(p, ":id", c.medication.String(), 1)
	}
	return strings.Replace(p, ":id", c.patient.String(), 1)
}

// eventCount counts a tenant's committed events, as that tenant. It counts
// rows rather than using ReadAll, whose gap-free horizon holds back events
// while any older transaction (another parallel test's) is still open: a
// "nothing written" check would then pass for want of seeing the writes.
func (e *apiEnv) eventCount(tenant chartstream.TenantID) int {
	e.t.Helper()
	var n int
	err := postgres.InTenantTx(testkit.Context(e.t), testkit.MustAppPool(e.t), tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(testkit.Context(e.t), `SELECT count(*) FROM events`).Scan(&n)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// eventIDs returns tenant's event ids in commit order.
func (e *apiEnv) eventIDs(tenant chartstream.TenantID) []uuid.UUID {
	e.t.Helper()
	var ids []uuid.UUID
	err := postgres.InTenantTx(testkit.Context(e.t), testkit.MustAppPool(e.t), tenant, func(tx pgx.Tx) error {
		rows, _ := tx.Query(testkit.Context(e.t), `SELECT event_id FROM events ORDER BY txid, position`)
		var err error
		ids, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return ids
}

// wantEvents fails the test unless tenant has n events; when says at what
// point, for the message.
func (e *apiEnv) wantEvents(tenant chartstream.TenantID, n int, when string) {
	e.t.Helper()
	if got := e.eventCount(tenant); got != n {
		e.t.Errorf("%d events %s, want %d", got, when, n)
	}
}

// project applies tenant's events to the read models, as the projector
// would: the api tests run none. ReadAll's gap-free horizon may hold back
// the tenant's last events while another test's transaction is open, so it
// waits until ReadAll sees every committed one. Applying is idempotent.
func (e *apiEnv) project(tenant chartstream.TenantID) {
	e.t.Helper()
	ctx := testkit.Context(e.t)
	want := e.eventCount(tenant)
	var events []chartstream.Event
	eventually(e.t, 10*time.Second, "ReadAll returns every event of the tenant", func() bool {
		var err error
		if events, _, err = e.store.ReadAll(ctx, eventstore.Filter{Tenant: tenant}, eventstore.Cursor{}, 1000); err != nil {
			e.t.Fatal(err)
		}
		return len(events) >= want
	})
	if len(events) == 0 {
		return
	}
	for i := range events {
		if err := e.store.Open(ctx, &events[i]); err != nil {
			e.t.Fatal(err)
		}
	}
	projections := []workers.Projection{chartmodel.Projector{}, observations.Projector{}, census.Projector{}, orders.Projector{}}
	err := postgres.InTenantTx(ctx, testkit.MustAppPool(e.t), tenant, func(tx pgx.Tx) error {
		return workers.ApplyEvents(ctx, tx, projections, events)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// newTenant creates a fresh tenant and a token of a fresh user with roles.
func (e *apiEnv) newTenant(roles ...chartstream.Role) (chartstream.TenantID, string) {
	e.t.Helper()
	tenant := testkit.MustTenant(e.t)
	return tenant, e.token(tenant, roles...)
}

// TestEveryRouteHidesOtherTenantsData is generated from the route table, so
// a new route is covered the day it is added: tenant B's clinician, aiming
// at tenant A's ids, gets 404 and nothing is written anywhere.
func TestEveryRouteHidesOtherTenantsData(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	a := e.newChart()
	b := testkit.MustTenant(t)
	tokenB := e.token(b, chartstream.RoleClinician, chartstream.RoleNurse, chartstream.RoleAuditor)
	before := e.eventCount(a.tenant)
	nobody := chart{patient: uuid.New(), allergy: uuid.New(), condition: uuid.New(), encounter: uuid.New(), medication: uuid.New()}
	routes := e.server.RouteTable()
	if len(routes) < 13 {
		t.Fatalf("route table has %d routes, want every command", len(routes))
	}
	for _, r := range routes {
		if !strings.Contains(r.Path, ":") {
			continue // creations of new patients name no existing id
		}
		t.Run(r.Method+" "+r.Path, func(t *testing.T) {
			got := e.do(r.Method, a.path(r.Path), tokenB, r.Example)
			if got.Status != http.StatusNotFound {
				t.Errorf("tenant B got %d on tenant A's ids, want 404: %s", got.Status, got.Raw)
			}
			// Never reveal existence: A's ids get the very answer unknown
			// ids get.
			unknown := e.do(r.Method, nobody.path(r.Path), tokenB, r.Example)
			if got.Status != unknown.Status || got.Problem.Type != unknown.Problem.Type || got.Problem.Detail != unknown.Problem.Detail {
				t.Errorf("tenant A's ids answer %d %q, unknown ids %d %q", got.Status, got.Problem.Detail, unknown.Status, unknown.Problem.Detail)
			}
		})
	}
	if after := e.eventCount(a.tenant); after != before {
		t.Errorf("tenant A has %d events after tenant B's attempts, had %d", after, before)
	}
	if n := e.eventCount(b); n != 0 {
		t.Errorf("tenant B has %d events, want none", n)
	}
}

// ownFields are answer fields that describe the caller and the moment
// rather than the tenant's data.
var ownFields = regexp.MustCompile(`"(tenant_id|exported_at|accessed_at|actor|request_id|hash)":"[^"]*"`)

// TestEveryListRouteHidesOtherTenantsData is generated from the route
// table too, for the reads that name no id (lists, searches, analytics):
// tenant B, with the route's roles and no data, gets exactly what another
// tenant without data gets, and tenant A, with data, something else. Were
// A's data to leak, the tenants without data would read it too, and equal
// A's answer. Small cells are shown (min cell 1), so that A's single
// records show.
func TestEveryListRouteHidesOtherTenantsData(t *testing.T) {
	t.Parallel()
	e := newAPIEnvWith(t, withMinCell(t, 1))
	a := e.newChart()
	e.do(http.MethodPost, "/v1/patients/"+a.patient.String()+"/observations", a.token, map[string]any{
		"code": "8867-4", "system": "http://loinc.org", "value": 72, "unit": "/min", "effective_at": time.Now().UTC().Add(-time.Minute).Format(time.RFC3339),
	}).want(t, http.StatusCreated)
	e.project(a.tenant)
	e.projectAnalytics(a.tenant)
	b, empty := testkit.MustTenant(t), testkit.MustTenant(t)
	lists := 0
	for _, r := range e.server.RouteTable() {
		if r.Method != http.MethodGet || strings.Contains(r.Path, ":") || !strings.HasPrefix(r.Path, "/v1/") {
			continue
		}
		lists++
		t.Run(r.Path, func(t *testing.T) {
			query := ""
			if r.Path == "/v1/patients" {
				query = "?name=Lovelace" // a search needs a criterion
			}
			read := func(tenant chartstream.TenantID) string {
				// The access log is written behind the reads: the tenants'
				// earlier reads must all be in it, or its listing differs
				// by timing alone.
				eventually(t, 10*time.Second, "the access log is written", func() bool { return e.access.Pending() == 0 })
				return string(e.do(r.Method, r.Path+query, e.token(tenant, r.Roles...), nil).want(t, http.StatusOK).Raw)
			}
			// The audit routes name the caller's own tenant, times, and its
			// own reads (the access log): those fields are the caller's, not
			// data, and are blanked before comparing.
			fromA, fromB, fromEmpty := ownFields.ReplaceAllString(read(a.tenant), `"$1":"_"`),
				ownFields.ReplaceAllString(read(b), `"$1":"_"`), ownFields.ReplaceAllString(read(empty), `"$1":"_"`)
			if fromA == fromEmpty {
				t.Errorf("a tenant without data reads what tenant A reads: %s", fromA)
			}
			if fromB != fromEmpty {
				t.Errorf("tenant B reads %s, a tenant without data %s", fromB, fromEmpty)
			}
		})
	}
	if lists < 5 {
		t.Fatalf("%d list routes, want the patient search, encounters and the three analytics", lists)
	}
}
