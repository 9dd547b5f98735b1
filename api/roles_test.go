package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
)

// A nurse records observations and allergies, refutes allergies and
// transfers patients, but does not register, treat or discharge them.
func TestNurseMayDoBedsideWorkOnly(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	nurse := e.token(c.tenant, chartstream.RoleNurse)
	p := "/v1/patients/" + c.patient.String()
	enc := "/v1/encounters/" + c.encounter.String()

	before := e.eventCount(c.tenant)
	refused := []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, "/v1/patients", newPatient()},
		{http.MethodPatch, p, map[string]any{"contact": map[string]any{"phone": "+44 20 7946 0001"}}},
		{http.MethodPost, p + "/conditions", map[string]any{"code": "38341003", "system": "http://snomed.info/sct"}},
		{http.MethodPost, p + "/conditions/" + c.condition.String() + "/resolve", nil},
		{http.MethodPost, p + "/encounters", map[string]any{"class": "outpatient", "location": "Clinic 2"}},
		{http.MethodPost, p + "/medication-orders", prescription("197361", "")},
		{http.MethodPost, "/v1/medication-orders/" + c.medication.String() + "/discontinue", nil},
		{http.MethodPost, enc + "/discharge", nil},
		{http.MethodPost, p + "/deceased", map[string]any{"deceased_at": "2025-03-01T10:00:00Z"}},
	}
	for _, r := range refused {
		e.do(r.method, r.path, nurse, r.body).wantProblem(t, http.StatusForbidden, chartstream.EFORBIDDEN)
	}
	e.wantEvents(c.tenant, before, "after refused commands")

	e.do(http.MethodPost, p+"/observations", nurse, map[string]any{
		"code": "8867-4", "system": "http://loinc.org", "value": 72, "unit": "/min", "effective_at": "2025-03-01T10:00:00Z",
	}).want(t, http.StatusCreated)
	allergy := e.do(http.MethodPost, p+"/allergies", nurse, map[string]any{
		"substance": map[string]any{"code": "1191", "display": "Aspirin", "system": rxNorm}, "criticality": "low", "reaction": "rash",
	}).want(t, http.StatusCreated).Result.ID
	e.do(http.MethodPost, p+"/allergies/"+allergy.String()+"/refute", nurse, nil).want(t, http.StatusOK)
	e.do(http.MethodPost, enc+"/transfer", nurse, map[string]any{"location": "ICU"}).want(t, http.StatusOK)
}

// Administrators, auditors and analysts use other interfaces: every
// route, taken from the route table, refuses them (auditors read) and
// writes nothing. A token with no role at all is refused too.
func TestNonClinicalRolesAreRefusedEveryCommand(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	before := e.eventCount(c.tenant)
	routes := e.server.RouteTable()
	for _, role := range []chartstream.Role{chartstream.RoleTenantAdmin, chartstream.RoleAuditor, chartstream.RoleAnalyst, ""} {
		var tok string
		if role == "" {
			tok = e.token(c.tenant)
		} else {
			tok = e.token(c.tenant, role)
		}
		for _, r := range routes {
			if r.Read && (role == chartstream.RoleAuditor || role == chartstream.RoleAnalyst && slices.Contains(r.Roles, role)) {
				continue // auditors read charts, analysts analytics; TestRouteRoles pins who reads
			}
			if slices.Contains(r.Roles, role) {
				t.Errorf("%s %s admits %q", r.Method, r.Path, role)
				continue
			}
			got := e.do(r.Method, c.path(r.Path), tok, r.Example)
			if got.Status != http.StatusForbidden || got.Problem.Type != api.ProblemType(chartstream.EFORBIDDEN) {
				t.Errorf("%q on %s %s: %d %q, want 403 forbidden", role, r.Method, r.Path, got.Status, got.Problem.Type)
			}
		}
	}
	e.wantEvents(c.tenant, before, "after refused commands")
}

// The route table gives each command to the roles the issue lists, and
// each read to the care team and auditors, so a role added to a route by
// mistake fails here, not in production.
func TestRouteRoles(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	bedside := map[string]bool{
		"POST /v1/patients/:id/allergies":             true,
		"POST /v1/patients/:id/allergies/:aid/refute": true,
		"POST /v1/patients/:id/observations":          true,
		"POST /v1/encounters/:id/transfer":            true,
	}
	for _, r := range e.server.RouteTable() {
		want := []chartstream.Role{chartstream.RoleClinician}
		switch {
		case r.Read && strings.HasPrefix(r.Path, "/v1/analytics/"):
			// Aggregates are the analysts', and theirs only.
			want = []chartstream.Role{chartstream.RoleAnalyst}
		case r.Read:
			// Charts are read by the care team and by auditors; analysts
			// get de-identified data elsewhere, never charts.
			want = append(want, chartstream.RoleNurse, chartstream.RoleAuditor)
		case bedside[r.Method+" "+r.Path]:
			want = append(want, chartstream.RoleNurse)
		}
		got := slices.Clone(r.Roles)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s %s admits %v, want %v", r.Method, r.Path, got, want)
		}
	}
}
