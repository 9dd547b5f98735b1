package api_test

import (
	"bytes"
	"maps"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/testkit"
)

// replayedHeaders are the response headers a replay must repeat.
var replayedHeaders = []string{"Content-Type", "Location", "ETag", "X-Consistency-Token"}

// wantReplayOf fails the test unless r repeats first: status, body and
// headers, marked as a replay.
func (r reply) wantReplayOf(t *testing.T, first reply) {
	t.Helper()
	if r.Status != first.Status || !bytes.Equal(r.Raw, first.Raw) {
		t.Errorf("replay %d %s, first answer %d %s", r.Status, r.Raw, first.Status, first.Raw)
	}
	for _, h := range replayedHeaders {
		if r.Header.Get(h) != first.Header.Get(h) {
			t.Errorf("replay has %s %q, first answer %q", h, r.Header.Get(h), first.Header.Get(h))
		}
	}
	if got := r.Header.Get("Idempotent-Replayed"); got != "true" {
		t.Errorf("Idempotent-Replayed %q on the replay, want true", got)
	}
}

// A retry with the key gets the first answer again, and the patient is
// registered once.
func TestIdempotentRetryReplaysTheFirstAnswer(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	tenant, tok := e.newTenant(chartstream.RoleClinician)
	body, key := newPatient(), uuid.NewString()
	first := e.do(http.MethodPost, "/v1/patients", tok, body, "Idempotency-Key", key).want(t, http.StatusCreated)
	if got := first.Header.Get("Idempotent-Replayed"); got != "" {
		t.Errorf("first answer is marked replayed: %q", got)
	}
	e.do(http.MethodPost, "/v1/patients", tok, body, "Idempotency-Key", key).wantReplayOf(t, first)
	e.wantEvents(tenant, 1, "after the retry")
}

// Ten concurrent requests with one key append once, and all learn the same
// id.
func TestIdempotentConcurrentRequestsAppendOnce(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	tenant, tok := e.newTenant(chartstream.RoleClinician)
	body, key := newPatient(), uuid.NewString()
	const n = 10
	replies := make([]reply, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			r, err := e.send(http.MethodPost, "/v1/patients", tok, body, "Idempotency-Key", key)
			if err != nil {
				t.Error(err)
			}
			replies[i] = r
		})
	}
	close(start)
	wg.Wait()
	replayed := 0
	for i, r := range replies {
		if r.Status != http.StatusCreated || r.Result.ID != replies[0].Result.ID || r.Result.ID == uuid.Nil {
			t.Errorf("request %d: %d %s, want 201 with id %s", i, r.Status, r.Raw, replies[0].Result.ID)
		}
		if r.Header.Get("Idempotent-Replayed") == "true" {
			replayed++
		}
	}
	if replayed != n-1 {
		t.Errorf("%d replays, want %d", replayed, n-1)
	}
	e.wantEvents(tenant, 1, "after concurrent retries")
}

// A key reused with another request is 422, and the other request is not
// run.
func TestIdempotencyKeyReusedWithAnotherBodyIs422(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	tenant, tok := e.newTenant(chartstream.RoleClinician)
	key := uuid.NewString()
	e.do(http.MethodPost, "/v1/patients", tok, newPatient(), "Idempotency-Key", key).want(t, http.StatusCreated)
	e.do(http.MethodPost, "/v1/patients", tok, newPatient(), "Idempotency-Key", key).
		wantProblem(t, http.StatusUnprocessableEntity, chartstream.EUNPROCESSABLE)
	e.wantEvents(tenant, 1, "after the reused key")
}

// Keys are the user's own: another user of the tenant sending the same key
// runs their own request. Sent with the same body, it really registers
// again and meets the MRN's uniqueness (a shared key would have replayed
// the 201); sent with another body, it is not a reused key.
func TestIdempotencyKeysAreScopedToTheUser(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	tenant := testkit.MustTenant(t)
	body, key := newPatient(), uuid.NewString()
	first := e.do(http.MethodPost, "/v1/patients", e.tokenFor(tenant, "dr-a", chartstream.RoleClinician), body, "Idempotency-Key", key).
		want(t, http.StatusCreated)

	r := e.do(http.MethodPost, "/v1/patients", e.tokenFor(tenant, "dr-b", chartstream.RoleClinician), body, "Idempotency-Key", key).
		wantProblem(t, http.StatusConflict, chartstream.ECONFLICT)
	if r.Header.Get("Idempotent-Replayed") != "" {
		t.Error("another user's request was answered from the first user's key")
	}
	other := e.do(http.MethodPost, "/v1/patients", e.tokenFor(tenant, "dr-c", chartstream.RoleClinician), newPatient(), "Idempotency-Key", key).
		want(t, http.StatusCreated)
	if other.Result.ID == first.Result.ID {
		t.Error("two users' registrations share an id")
	}
	e.wantEvents(tenant, 2, "from three users' registrations, one refused")
}

// A refusal is kept like a success: the retry gets the 422 again although
// the request would now succeed, and it writes nothing.
func TestIdempotentRetryReplaysARefusal(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart() // allergic to RxNorm 7980
	orders := "/v1/patients/" + c.patient.String() + "/medication-orders"
	key := uuid.NewString()
	first := e.do(http.MethodPost, orders, c.token, prescription("7980", ""), "Idempotency-Key", key).
		wantProblem(t, http.StatusUnprocessableEntity, chartstream.EUNPROCESSABLE)
	e.do(http.MethodPost, "/v1/patients/"+c.patient.String()+"/allergies/"+c.allergy.String()+"/refute", c.token, nil).want(t, http.StatusOK)
	before := e.eventCount(c.tenant)
	e.do(http.MethodPost, orders, c.token, prescription("7980", ""), "Idempotency-Key", key).wantReplayOf(t, first)
	e.wantEvents(c.tenant, before, "after the replay")
	// Without the key the prescription now goes through.
	e.do(http.MethodPost, orders, c.token, prescription("7980", "")).want(t, http.StatusCreated)
}

// The database goes away as a command commits: the answer is 503 with its
// own problem type and Retry-After, since the outcome is unknown. A retry
// with the same key, once the database is back, returns the original
// outcome (the command had committed), and nothing is recorded twice.
func TestCommitOutcomeUnknownThenARetryReturnsTheOriginalOutcome(t *testing.T) {
	t.Parallel()
	proxy, pool := testkit.MustProxiedPool(t, "DATABASE_URL")
	var log testkit.Buffer
	e := newAPIEnvWith(t, withStore(pool, eventstore.Config{ResolveTimeout: 300 * time.Millisecond}), withLog(&log))
	defer func() {
		if t.Failed() {
			t.Log(log.String())
		}
	}()
	tenant, tok := e.newTenant(chartstream.RoleClinician)
	id := e.do(http.MethodPost, "/v1/patients", tok, newPatient()).want(t, http.StatusCreated).Result.ID
	path := "/v1/patients/" + id.String() + "/observations"
	obs := map[string]any{"code": "8867-4", "system": "http://loinc.org", "value": 72, "unit": "/min", "effective_at": "2026-11-26T10:00:00Z"}
	key := uuid.NewString()

	proxy.CutAfterCommitAndRefuse()
	first := e.do(http.MethodPost, path, tok, obs, "Idempotency-Key", key)
	proxy.Refuse(false)
	if first.Status != http.StatusServiceUnavailable || first.Problem.Type != "urn:chartstream:problem:commit-unknown" || first.Header.Get("Retry-After") == "" {
		t.Fatalf("while the database is away: %d %s (Retry-After %q)", first.Status, first.Raw, first.Header.Get("Retry-After"))
	}
	var retry reply
	deadline := time.Now().Add(10 * time.Second)
	for {
		retry = e.do(http.MethodPost, path, tok, obs, "Idempotency-Key", key)
		if retry.Status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	retry.want(t, http.StatusCreated)
	e.wantEvents(tenant, 2, "after the retry") // the registration and one observation
	if again := e.do(http.MethodPost, path, tok, obs, "Idempotency-Key", key); again.Result != retry.Result {
		t.Errorf("another retry %+v, the first retry %+v", again.Result, retry.Result)
	}
}

// A key on a read is ignored: the read runs each time, so a second search
// with the key but another query answers its own query (the fingerprint
// used to leave the query out, and the first search's results came back),
// and nothing is kept to replay.
func TestIdempotencyKeyIsIgnoredOnReads(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	tenant, tok := e.newTenant(chartstream.RoleClinician)
	a, b := newPatient(), newPatient()
	e.do(http.MethodPost, "/v1/patients", tok, a).want(t, http.StatusCreated)
	e.do(http.MethodPost, "/v1/patients", tok, b).want(t, http.StatusCreated)
	e.project(tenant)
	key := uuid.NewString()
	for _, p := range []map[string]any{a, b, a} {
		r := e.do(http.MethodGet, "/v1/patients?mrn="+p["mrn"].(string), tok, nil, "Idempotency-Key", key).want(t, http.StatusOK)
		items, _ := r.Body["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["mrn"] != p["mrn"] || r.Header.Get("Idempotent-Replayed") != "" {
			t.Errorf("search for %s with a reused key: %s (replayed %q)", p["mrn"], r.Raw, r.Header.Get("Idempotent-Replayed"))
		}
	}
}

// A replay comes after the route's role check: the same user and key, but
// a token without the role the route needs, is 403, not the first answer.
func TestIdempotentReplayComesAfterTheRoleCheck(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	clinician := e.tokenFor(c.tenant, "dr-x", chartstream.RoleClinician)
	nurse := e.tokenFor(c.tenant, "dr-x", chartstream.RoleNurse) // same tenant and subject
	path := "/v1/patients/" + c.patient.String() + "/conditions"
	body := map[string]any{"code": "38341003", "system": "http://snomed.info/sct"}
	key := uuid.NewString()
	first := e.do(http.MethodPost, path, clinician, body, "Idempotency-Key", key).want(t, http.StatusCreated)
	r := e.do(http.MethodPost, path, nurse, body, "Idempotency-Key", key).wantProblem(t, http.StatusForbidden, chartstream.EFORBIDDEN)
	if r.Header.Get("Idempotent-Replayed") != "" || bytes.Contains(r.Raw, []byte(first.Result.ID.String())) {
		t.Errorf("a nurse got the clinician's answer: %s", r.Raw)
	}
	e.do(http.MethodPost, path, clinician, body, "Idempotency-Key", key).wantReplayOf(t, first)
}

// The fingerprint covers the query: a key reused with another query is a
// reused key (422), not a replay of the first answer.
func TestIdempotencyFingerprintCoversTheQuery(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	tenant, tok := e.newTenant(chartstream.RoleClinician)
	body, key := newPatient(), uuid.NewString()
	e.do(http.MethodPost, "/v1/patients?dry_run=true", tok, body, "Idempotency-Key", key).wantProblem(t, http.StatusBadRequest, chartstream.EINVALID)
	r := e.do(http.MethodPost, "/v1/patients", tok, body, "Idempotency-Key", key).wantProblem(t, http.StatusUnprocessableEntity, chartstream.EUNPROCESSABLE)
	if r.Header.Get("Idempotent-Replayed") != "" {
		t.Error("a request with another query was answered from the key")
	}
	e.wantEvents(tenant, 0, "after the refusals")
}

// After a patient's erasure no replay returns their PHI: a chart read
// with a key is read again (and finds the PHI gone), and a command's
// replay is its result, ids and versions only.
func TestIdempotentReplaysNeverReturnPHIAfterErasure(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	tenant, tok := e.newTenant(chartstream.RoleClinician)
	reg := newPatient()
	reg["name"] = map[string]any{"family": "Zyxwvut", "given": []string{"Qwertz"}}
	regKey, readKey := uuid.NewString(), uuid.NewString()
	created := e.do(http.MethodPost, "/v1/patients", tok, reg, "Idempotency-Key", regKey).want(t, http.StatusCreated)
	chartPath := "/v1/patients/" + created.Result.ID.String()
	e.project(tenant)
	if r := e.do(http.MethodGet, chartPath, tok, nil, "Idempotency-Key", readKey).want(t, http.StatusOK); !bytes.Contains(r.Raw, []byte("Zyxwvut")) {
		t.Fatalf("the chart lacks the name before erasure: %s", r.Raw)
	}
	ctx := testkit.Context(t)
	if _, err := commands.New(e.store, nil).Run(ctx, tenant, chartstream.Metadata{Actor: "dpo-1"}, patient.ErasePatient{PatientID: created.Result.ID}); err != nil {
		t.Fatal(err)
	}
	e.project(tenant)

	read := e.do(http.MethodGet, chartPath, tok, nil, "Idempotency-Key", readKey)
	replay := e.do(http.MethodPost, "/v1/patients", tok, reg, "Idempotency-Key", regKey)
	replay.wantReplayOf(t, created)
	for name, r := range map[string]reply{"chart read": read, "registration replay": replay} {
		for _, phi := range []string{"Zyxwvut", "Qwertz", reg["mrn"].(string), "1990-01-02"} {
			if bytes.Contains(r.Raw, []byte(phi)) {
				t.Errorf("%s after erasure repeats %q: %s", name, phi, r.Raw)
			}
		}
	}
	if read.Header.Get("Idempotent-Replayed") != "" {
		t.Error("a chart read was replayed")
	}
	if keys := slices.Sorted(maps.Keys(replay.Body)); !slices.Equal(keys, []string{"id", "version"}) {
		t.Errorf("a replayed command answers fields %v, want id, position, version", keys)
	}
}
