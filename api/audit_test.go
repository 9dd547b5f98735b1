package api_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/audit"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/eventstore/eventstoretest"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
)

// ndjsonLines decodes an NDJSON export into its lines.
func ndjsonLines(t *testing.T, raw []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// signCheckpoint stores a checkpoint of the tenant's whole history, signed with the
// key the server trusts, as the anchor worker would (as the relay role).
func (e *apiEnv) signCheckpoint(tenant chartstream.TenantID) eventstore.Checkpoint {
	e.t.Helper()
	ctx := testkit.Context(e.t)
	report, err := e.store.Verify(ctx, tenant, eventstore.VerifyParams{})
	if err != nil {
		e.t.Fatal(err)
	}
	cursors, err := e.store.CursorCodec(ctx, tenant)
	if err != nil {
		e.t.Fatal(err)
	}
	c := eventstore.Checkpoint{Tenant: tenant, Seq: 1, Chain: report.Anchored, LastToken: cursors.Seal(report.Anchored.Last),
		SignedAt: time.Now().UTC().Truncate(time.Microsecond)}
	audit.Sign(&c, e.checkpointSigner)
	keyFile := filepath.Join(e.t.TempDir(), "phi.key")
	if _, err := phi.CreateLocalKeyFile(keyFile); err != nil {
		e.t.Fatal(err)
	}
	keys, err := phi.OpenLocalKeyFile(keyFile)
	if err != nil {
		e.t.Fatal(err)
	}
	reg, err := eventstore.NewRegistry(commands.EventSpecs())
	if err != nil {
		e.t.Fatal(err)
	}
	relay, err := eventstore.New(testkit.MustPool(e.t, "DATABASE_RELAY_URL"), reg, keys, eventstore.Config{})
	if err != nil {
		e.t.Fatal(err)
	}
	if taken, err := relay.SaveCheckpoints(ctx, []eventstore.Checkpoint{c}); err != nil || len(taken) > 0 {
		e.t.Fatalf("save checkpoint: %v (taken %v)", err, taken)
	}
	return c
}

// The export of a tenant over HTTP: NDJSON in commit order with the
// checkpoint first and a counting last line, each event with who and
// when, its hashes and its PHI decrypted; CSV on request; resumed after a
// cursor; filtered by patient. Bad input is a 4xx problem, never a 500.
func TestAuditExport(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	cp := e.signCheckpoint(c.tenant)
	other := e.do(http.MethodPost, "/v1/patients", c.token, newPatient()).want(t, http.StatusCreated).Result.ID
	auditor := e.token(c.tenant, chartstream.RoleAuditor)
	// The export reads below the gap-free horizon: the newest events show
	// once the transactions open when they committed (other tests') end.
	var r reply
	var lines []map[string]any
	eventually(t, 10*time.Second, "the export shows the six events", func() bool {
		r = e.do(http.MethodGet, "/v1/audit/events", auditor, nil).want(t, http.StatusOK)
		lines = ndjsonLines(t, r.Raw)
		return len(lines) >= 8
	})
	if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("content type %q", ct)
	}
	if len(lines) != 8 || lines[0]["record"] != "export" || lines[7]["record"] != "end" || lines[7]["events"] != float64(6) {
		t.Fatalf("%d lines: %v", len(lines), lines)
	}
	if at(lines[0], "checkpoint", "seq") != float64(1) || at(lines[0], "checkpoint", "events") != float64(cp.Events) || lines[0]["full"] != true {
		t.Errorf("header %v, want the signed checkpoint of %d events", lines[0], cp.Events)
	}
	first := lines[1]
	if first["event_type"] != "patient.registered" || at(first, "metadata", "actor") == nil || first["recorded_at"] == nil ||
		first["prev_hash"] != nil || len(first["hash"].(string)) != 64 || at(first, "phi", "name", "family") != "Lovelace" {
		t.Errorf("first event %v", first)
	}
	if lines[2]["prev_hash"] != nil && lines[2]["stream_id"] == first["stream_id"] && lines[2]["prev_hash"] != first["hash"] {
		t.Errorf("the second event of the stream does not name the first's hash")
	}
	// Resume after the fourth event: the last two. Another tenant's
	// auditor cannot use the cursor.
	cursor, _ := lines[4]["cursor"].(string)
	rest := ndjsonLines(t, e.do(http.MethodGet, "/v1/audit/events?cursor="+cursor, auditor, nil).want(t, http.StatusOK).Raw)
	if len(rest) != 4 || rest[1]["event_id"] != lines[5]["event_id"] || rest[2]["event_id"] != lines[6]["event_id"] || rest[0]["full"] != false {
		t.Errorf("resumed after %s: %v", cursor, rest)
	}
	e.do(http.MethodGet, "/v1/audit/events?cursor="+cursor, e.token(testkit.MustTenant(t), chartstream.RoleAuditor), nil).
		wantProblem(t, http.StatusBadRequest, chartstream.EINVALID).wantField(t, "cursor")
	// Ended with the checkpoint's last event: the registration after it is
	// left out. A tenant without a checkpoint has nothing to end with.
	upTo := ndjsonLines(t, e.do(http.MethodGet, "/v1/audit/events?anchored=true", auditor, nil).want(t, http.StatusOK).Raw)
	if len(upTo) != int(cp.Events)+2 || upTo[len(upTo)-2]["event_id"] != lines[5]["event_id"] || upTo[0]["full"] != true {
		t.Errorf("export up to the checkpoint of %d events: %v", cp.Events, upTo)
	}
	e.do(http.MethodGet, "/v1/audit/events?anchored=true", e.token(testkit.MustTenant(t), chartstream.RoleAuditor), nil).
		wantProblem(t, http.StatusConflict, chartstream.ECONFLICT)
	// CSV, by Accept or by format; one patient's streams.
	for _, req := range []struct{ query, accept string }{{"?patient=" + c.patient.String(), "text/csv"}, {"?format=csv&patient=" + c.patient.String(), ""}} {
		got := e.do(http.MethodGet, "/v1/audit/events"+req.query, auditor, nil, "Accept", req.accept).want(t, http.StatusOK)
		rows, err := csv.NewReader(bytes.NewReader(got.Raw)).ReadAll()
		if err != nil || len(rows) != 6 || rows[0][0] != "cursor" || strings.Contains(string(got.Raw), other.String()) {
			t.Errorf("CSV of the patient's 5 events: %d rows (%v): %s", len(rows), err, got.Raw)
		}
	}
	for _, bad := range []struct {
		query, field string
	}{{"?format=xml", "format"}, {"?since=2025-02-01T00:00:00Z&until=2025-01-01T00:00:00Z", "until"}, {"?since=yesterday", "since"},
		{"?cursor=12", "cursor"}, {"?anchored=yes", "anchored"}, {"?patient=ada", "patient"}, {"?limit=0", "limit"}, {"?stream_typ=patient", "stream_typ"}} {
		e.do(http.MethodGet, "/v1/audit/events"+bad.query, auditor, nil).wantProblem(t, http.StatusBadRequest, chartstream.EINVALID).wantField(t, bad.field)
	}
	e.do(http.MethodGet, "/v1/audit/events?patient="+uuid.NewString(), auditor, nil).wantProblem(t, http.StatusNotFound, chartstream.ENOTFOUND)
	e.do(http.MethodGet, "/v1/audit/events", c.token, nil).wantProblem(t, http.StatusForbidden, chartstream.EFORBIDDEN)
}

// Positions stay inside the tenant: no answer an auditor gets (the
// export in NDJSON and CSV, its checkpoint, the patient's history, a
// chart's past, the verification report) carries an event's global
// position, which would let the tenant count the other tenants' writes
// between two of its own. Each names events by a cursor sealed for the
// tenant, which opens, with the tenant's key only, to where the event
// really is.
func TestAuditorsAnswersCarryNoGlobalPosition(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	e.signCheckpoint(c.tenant)
	auditor := e.token(c.tenant, chartstream.RoleAuditor)
	ctx := testkit.Context(t)
	events := eventstoretest.ReadCommitted(t, ctx, e.store, c.tenant)
	cursors, err := e.store.CursorCodec(ctx, c.tenant)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := e.store.CursorCodec(ctx, testkit.MustTenant(t))
	if err != nil {
		t.Fatal(err)
	}
	// sealed checks that a token opens to the event's own cursor, and
	// with the tenant's key only.
	sealed := func(where string, token any, event uuid.UUID) {
		t.Helper()
		s, _ := token.(string)
		got, err := cursors.Open(s)
		i := slices.IndexFunc(events, func(ev chartstream.Event) bool { return ev.ID == event })
		if err != nil || i < 0 || got != eventstore.CursorOf(events[i]) {
			t.Errorf("%s: %v does not seal the cursor of event %s (%v)", where, token, event, err)
		}
		if _, err := foreign.Open(s); err == nil {
			t.Errorf("%s: another tenant's key opens %q", where, s)
		}
	}
	// noPosition fails on any number or object under a key that names
	// a place in the commit order.
	var noPosition func(where string, v any)
	noPosition = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				switch k {
				case "position", "txid", "cursor", "last", "next_cursor", "after":
					if _, isString := x.(string); x != nil && !isString {
						t.Errorf("%s: %q is %v, not a sealed cursor", where, k, x)
					}
				}
				noPosition(where+"."+k, x)
			}
		case []any:
			for _, x := range v {
				noPosition(where, x)
			}
		}
	}
	lines := ndjsonLines(t, e.do(http.MethodGet, "/v1/audit/events", auditor, nil).want(t, http.StatusOK).Raw)
	for _, l := range lines {
		noPosition("export", l)
	}
	if len(lines) != len(events)+2 {
		t.Fatalf("export of %d lines, want %d events and two", len(lines), len(events))
	}
	last := events[len(events)-1]
	sealed("export checkpoint", at(lines[0], "checkpoint", "last"), last.ID)
	sealed("export end", lines[len(lines)-1]["last"], last.ID)
	for _, l := range lines[1 : len(lines)-1] {
		sealed("export line", l["cursor"], uuid.MustParse(l["event_id"].(string)))
	}
	rows, err := csv.NewReader(bytes.NewReader(e.do(http.MethodGet, "/v1/audit/events?format=csv", auditor, nil).want(t, http.StatusOK).Raw)).ReadAll()
	if err != nil || len(rows) != len(events)+1 || slices.Contains(rows[0], "position") || slices.Contains(rows[0], "txid") {
		t.Fatalf("CSV export of %d rows, header %v: %v", len(rows), rows[:min(1, len(rows))], err)
	}
	sealed("CSV row", rows[1][slices.Index(rows[0], "cursor")], uuid.MustParse(rows[1][slices.Index(rows[0], "event_id")]))
	p := "/v1/patients/" + c.patient.String()
	history := e.do(http.MethodGet, p+"/history?limit=1", auditor, nil).want(t, http.StatusOK)
	noPosition("history", history.Body)
	sealed("history item", at(history.Body["items"].([]any)[0], "position"), uuid.MustParse(at(history.Body["items"].([]any)[0], "event_id").(string)))
	sealed("history next_cursor", history.Body["next_cursor"], uuid.MustParse(at(history.Body["items"].([]any)[0], "event_id").(string)))
	past := e.do(http.MethodGet, p+"?as_of="+url.QueryEscape(time.Now().UTC().Format(time.RFC3339Nano)), c.token, nil).want(t, http.StatusOK)
	sealed("time travel header", past.Header.Get(api.HeaderLastEventPosition), last.ID) // the tenant's events are all the patient's
	report := e.do(http.MethodGet, "/v1/audit/verify", auditor, nil).want(t, http.StatusOK).Body
	noPosition("verify", report)
	sealed("verify checkpoint", at(report, "checkpoint", "last"), last.ID)
}

// GET /v1/audit/verify reports on the history as chartstream verify does.
func TestAuditVerify(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	auditor := e.token(c.tenant, chartstream.RoleAuditor)
	r := e.do(http.MethodGet, "/v1/audit/verify", auditor, nil).want(t, http.StatusOK)
	if r.Body["ok"] != true || r.Body["checkpoint"] != nil || r.Body["unanchored"] != float64(5) {
		t.Errorf("before any checkpoint: %s", r.Raw)
	}
	cp := e.signCheckpoint(c.tenant)
	e.do(http.MethodPost, "/v1/patients", c.token, newPatient()).want(t, http.StatusCreated)
	r = e.do(http.MethodGet, "/v1/audit/verify", auditor, nil).want(t, http.StatusOK)
	if r.Body["ok"] != true || at(r.Body, "checkpoint", "seq") != float64(1) || r.Body["anchored"] != float64(cp.Events) || r.Body["unanchored"] != float64(1) ||
		r.Body["anchors_consulted"] != false {
		t.Errorf("after a checkpoint and one more event: %s", r.Raw)
	}
	e.do(http.MethodGet, "/v1/audit/verify?tenant=x", auditor, nil).wantProblem(t, http.StatusBadRequest, chartstream.EINVALID)
}

// GET /v1/audit/verify answers an attack as chartstream verify does: the
// owner rewrites an anchored event (its trigger disabled), and the report
// says not OK, naming the broken chain and the altered history. Not
// parallel: disabling the trigger locks the events table.
func TestAuditVerifyNamesAnAlteredEvent(t *testing.T) {
	e := newAPIEnv(t)
	c := e.newChart()
	auditor := e.token(c.tenant, chartstream.RoleAuditor)
	e.signCheckpoint(c.tenant)
	if r := e.do(http.MethodGet, "/v1/audit/verify", auditor, nil).want(t, http.StatusOK); r.Body["ok"] != true {
		t.Fatalf("untouched: %s", r.Raw)
	}
	ctx := testkit.Context(t)
	err := postgres.InTenantTx(ctx, testkit.MustAdminPool(t), c.tenant, func(tx pgx.Tx) error {
		for _, sql := range []string{`ALTER TABLE events DISABLE TRIGGER events_no_update_delete`,
			`UPDATE events SET metadata = '{"actor": "someone else"}' WHERE stream_id = '` + c.patient.String() + `' AND version = 2`,
			`ALTER TABLE events ENABLE TRIGGER events_no_update_delete`} {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var report audit.Report
	r := e.do(http.MethodGet, "/v1/audit/verify", auditor, nil).want(t, http.StatusOK)
	if err := json.Unmarshal(r.Raw, &report); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]audit.Finding{}
	for _, f := range report.Findings {
		kinds[f.Kind] = f
	}
	broken := kinds[audit.KindBrokenChain].Event
	if report.OK || broken == nil || broken.Stream.ID != c.patient || broken.Version != 2 || broken.Reason != "hash mismatch" ||
		!strings.Contains(kinds[audit.KindAlteredEvents].Detail, "not those signed") {
		t.Errorf("after the owner rewrote version 2 of the patient: %s", r.Raw)
	}
}

// TestAuditorsSeeOnlyTheirTenant is generated from the route table, for
// the reads the other cross-tenant test cannot aim at another tenant's
// ids (they take no path id): tenant B's auditor, naming A's patient
// where a route takes a patient, sees nothing of A's: no id, no name.
func TestAuditorsSeeOnlyTheirTenant(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	a := e.newChart()
	e.project(a.tenant)
	e.do(http.MethodGet, "/v1/patients/"+a.patient.String(), a.token, nil).want(t, http.StatusOK) // an access entry in A
	e.accessEntries(a.tenant, 1)
	_, tokenB := e.newTenant(chartstream.RoleClinician, chartstream.RoleNurse, chartstream.RoleAuditor)
	checked := 0
	for _, r := range e.server.RouteTable() {
		if !r.Read || r.Method != http.MethodGet || strings.Contains(r.Path, ":") {
			continue
		}
		query := baseQuery(r.Path, a)
		if r.Path == "/v1/audit/events" || r.Path == "/v1/audit/access" || r.Path == "/fhir/R4/Encounter" {
			query = "?patient=" + a.patient.String()
		}
		got := e.do(r.Method, r.Path+query, tokenB, nil)
		checked++
		if got.Status >= 500 {
			t.Errorf("%s %s: %d", r.Method, r.Path, got.Status)
		}
		for _, secret := range []string{a.patient.String(), a.encounter.String(), a.medication.String(), a.tenant.String(), "Lovelace"} {
			if got.Status == http.StatusOK && strings.Contains(string(got.Raw), secret) {
				t.Errorf("%s %s%s: tenant B sees %s of tenant A: %.300s", r.Method, r.Path, query, secret, got.Raw)
			}
		}
	}
	if checked < 8 {
		t.Errorf("checked %d routes", checked)
	}
}
