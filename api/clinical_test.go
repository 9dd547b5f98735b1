package api_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/auth"
	"github.com/chartstream/chartstream/internal/idempotency"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/ratelimit"
	"github.com/chartstream/chartstream/internal/revocation"
	"github.com/chartstream/chartstream/internal/tenants"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/projections/census"
	chartmodel "github.com/chartstream/chartstream/projections/chart"
	"github.com/chartstream/chartstream/projections/observations"
	"github.com/chartstream/chartstream/projections/orders"
	"github.com/chartstream/chartstream/workers"
)

const (
	testIssuer   = "chartstream-test"
	testAudience = "chartstream"
)

// apiEnv is the real API over the real event store, Redis and PostgreSQL,
// served on a loopback port, with a dev key to mint tokens.
type apiEnv struct {
	t      *testing.T
	server *api.Server
	url    string
	minter *auth.Minter
	store  *eventstore.Store
	redis  *redis.Client
	prefix string
	// devKey is the private half of the dev key the verifier trusts, and
	// kid its id, for tests that build tokens the minter refuses to.
	devKey *ecdsa.PrivateKey
	kid    string
}

// lockedBuffer is a log sink the server's goroutines may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// envConfig is what envOptions may change before newAPIEnvWith builds.
type envConfig struct {
	rate ratelimit.Config
	log  io.Writer
}

// envOption adjusts the environment newAPIEnvWith builds.
type envOption func(*envConfig)

// withRateLimit edits the rate limiter's configuration (its Prefix is the
// environment's own and should be left alone).
func withRateLimit(edit func(*ratelimit.Config)) envOption {
	return func(c *envConfig) { edit(&c.rate) }
}

// withLog sends the server's log, at debug level, to w.
func withLog(w io.Writer) envOption {
	return func(c *envConfig) { c.log = w }
}

func newAPIEnv(t *testing.T) *apiEnv {
	t.Helper()
	return newAPIEnvWith(t)
}

func newAPIEnvWith(t *testing.T, opts ...envOption) *apiEnv {
	t.Helper()
	cfg := envConfig{rate: ratelimit.DefaultConfig(), log: io.Discard}
	for _, o := range opts {
		o(&cfg)
	}
	dir := t.TempDir()
	keyFile, devKey := filepath.Join(dir, "phi.key"), filepath.Join(dir, "jwt.pem")
	if _, err := phi.CreateLocalKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	keys, err := phi.OpenLocalKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := eventstore.NewRegistry(commands.EventSpecs())
	if err != nil {
		t.Fatal(err)
	}
	store, err := eventstore.New(testkit.MustAppPool(t), reg, keys, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.CreateDevKey(devKey); err != nil {
		t.Fatal(err)
	}
	key, err := auth.LoadDevKey(devKey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewVerifier(context.Background(), auth.Config{Issuer: testIssuer, Audience: testAudience, DevKeyFile: devKey, AllowDevKey: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(verifier.Close)
	rdb := testkit.MustRedis(t)
	prefix := "test:" + uuid.NewString() + ":"
	rateCfg := cfg.rate
	rateCfg.Prefix = prefix + "rl:"
	limits, err := ratelimit.New(rdb, rateCfg)
	if err != nil {
		t.Fatal(err)
	}
	idem, err := idempotency.New(rdb, idempotency.Config{Prefix: prefix + "idem:"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.NewServer(api.Deps{
		Logger: logging.New(cfg.log, slog.LevelDebug),
		Events: store, Tokens: verifier, Tenants: tenants.NewDirectory(testkit.MustAppPool(t)),
		Revocations: revocation.New(rdb, prefix+"revoked:"),
		Limits:      limits, Idempotency: idem, ReadModels: testkit.MustAppPool(t),
	}, api.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &apiEnv{t: t, server: srv, url: hs.URL, minter: auth.NewMinter(key), store: store, redis: rdb, prefix: prefix,
		devKey: readDevKey(t, devKey), kid: key.KeyID()}
}

// readDevKey parses the PKCS #8 file CreateDevKey wrote. auth.DevKey keeps
// its private half to itself, as it should; tests forging tokens need it.
func readDevKey(t *testing.T, path string) *ecdsa.PrivateKey {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		t.Fatal("dev key file holds no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("dev key is a %T", k)
	}
	return ec
}

// tokenFor mints a token for a named subject of tenant.
func (e *apiEnv) tokenFor(tenant chartstream.TenantID, subject string, roles ...chartstream.Role) string {
	e.t.Helper()
	tok, err := e.minter.Mint(auth.MintParams{Tenant: tenant, Subject: subject, Roles: roles, TTL: time.Hour, Issuer: testIssuer, Audience: testAudience})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// token mints a token for a fresh subject of tenant with the given roles.
func (e *apiEnv) token(tenant chartstream.TenantID, roles ...chartstream.Role) string {
	e.t.Helper()
	return e.tokenFor(tenant, "user-"+uuid.NewString()[:8], roles...)
}

// reply is a decoded response.
type reply struct {
	Status  int
	Header  http.Header
	Body    map[string]any
	Raw     []byte
	Result  api.CommandResult
	Problem api.Problem
}

// do sends a request with a JSON body (nil for none; a string is sent as
// is) and decodes the reply; headers are name, value pairs, and may replace
// Content-Type or Authorization.
func (e *apiEnv) do(method, path, token string, body any, headers ...string) reply {
	e.t.Helper()
	r, err := e.send(method, path, token, body, headers...)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// send is do for goroutines other than the test's: it returns its error.
func (e *apiEnv) send(method, path, token string, body any, headers ...string) (reply, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return reply{}, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		return reply{}, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	r := reply{Status: resp.StatusCode, Header: resp.Header}
	if r.Raw, err = io.ReadAll(resp.Body); err != nil {
		return reply{}, err
	}
	_ = json.Unmarshal(r.Raw, &r.Body)
	if resp.StatusCode < 300 {
		_ = json.Unmarshal(r.Raw, &r.Result)
	} else {
		_ = json.Unmarshal(r.Raw, &r.Problem)
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/fhir+json") {
			// FHIR routes answer errors as OperationOutcomes; read them
			// as Problems too, so the checks generated from the route
			// table hold FHIR routes to the same rules.
			r.Problem = outcomeProblem(resp.StatusCode, r.Raw)
		}
	}
	return r, nil
}

// want fails the test unless the reply has the status.
func (r reply) want(t *testing.T, status int) reply {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
	return r
}

// wantProblem fails the test unless the reply is a problem+json document
// with the status and the type of the error code.
func (r reply) wantProblem(t *testing.T, status int, code string) reply {
	t.Helper()
	r.want(t, status)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, api.ProblemContentType) {
		t.Errorf("content type %q, want %s: %s", ct, api.ProblemContentType, r.Raw)
	}
	if want := api.ProblemType(code); r.Problem.Type != want || r.Problem.Status != status {
		t.Errorf("problem type %q status %d, want %q %d: %s", r.Problem.Type, r.Problem.Status, want, status, r.Raw)
	}
	return r
}

// wantField fails the test unless the problem names field among its errors.
func (r reply) wantField(t *testing.T, field string) reply {
	t.Helper()
	for _, f := range r.Problem.Errors {
		if f.Field == field {
			return r
		}
	}
	t.Errorf("problem names no field %q: %s", field, r.Raw)
	return r
}

// eventually polls check every 50ms until it returns true, failing the
// test with what if it has not by the deadline.
func eventually(t *testing.T, within time.Duration, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

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
	r := strings.NewReplacer(":aid", c.allergy.String(), ":cid", c.condition.String())
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
	tokenB := e.token(b, chartstream.RoleClinician, chartstream.RoleNurse)
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
