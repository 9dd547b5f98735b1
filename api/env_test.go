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
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/audit"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/accesslog"
	"github.com/chartstream/chartstream/internal/auth"
	"github.com/chartstream/chartstream/internal/idempotency"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/ratelimit"
	"github.com/chartstream/chartstream/internal/revocation"
	"github.com/chartstream/chartstream/internal/signing"
	"github.com/chartstream/chartstream/internal/tenants"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/projections/analytics"
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
	// access is the server's PHI access log; checkpointSigner signs the
	// checkpoints its verification trusts.
	access           *accesslog.Log
	checkpointSigner *signing.Signer
}

// envConfig is what envOptions may change before newAPIEnvWith builds.
type envConfig struct {
	rate ratelimit.Config
	log  io.Writer
	// storePool and storeCfg, when set, are the event store's.
	storePool *pgxpool.Pool
	storeCfg  eventstore.Config
	// analytics serves /v1/analytics: the replica's, at min cell 11,
	// unless an option replaced it (nil: none configured).
	analytics    api.AnalyticsReader
	analyticsSet bool
	// readModels, when set, is the pool queries read from.
	readModels *pgxpool.Pool
	server     api.Config
	// accessPool, when set, is the pool the access log writes through.
	accessPool *pgxpool.Pool
}

// envOption adjusts the environment newAPIEnvWith builds.
type envOption func(*envConfig)

// withRateLimit edits the rate limiter's configuration (its Prefix is the
// environment's own and should be left alone).
func withRateLimit(edit func(*ratelimit.Config)) envOption {
	return func(c *envConfig) { edit(&c.rate) }
}

// withStore gives the event store a pool and configuration of the test's
// (a pool through a testkit.PGProxy, say).
func withStore(pool *pgxpool.Pool, cfg eventstore.Config) envOption {
	return func(c *envConfig) { c.storePool, c.storeCfg = pool, cfg }
}

// withAnalytics gives the server this analytics reader (nil: none).
func withAnalytics(r api.AnalyticsReader) envOption {
	return func(c *envConfig) { c.analytics, c.analyticsSet = r, true }
}

// withMinCell reads the replica with this small-cell threshold.
func withMinCell(t *testing.T, minCell int) envOption {
	return withAnalytics(mustAnalyticsReader(t, testkit.MustReplicaPool(t), minCell))
}

func mustAnalyticsReader(t *testing.T, pool *pgxpool.Pool, minCell int) *analytics.Reader {
	t.Helper()
	r, err := analytics.NewReader(pool, testkit.MustAppPool(t), analytics.ReaderConfig{MinCell: minCell})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// withReadModels gives the queries a pool of the test's.
func withReadModels(pool *pgxpool.Pool) envOption {
	return func(c *envConfig) { c.readModels = pool }
}

// withServer sets the server's configuration (its Addr is the test's).
func withServer(cfg api.Config) envOption {
	return func(c *envConfig) { c.server = cfg }
}

// withAccessLogPool makes the access log write through a pool of the
// test's (a pool through a testkit.PGProxy, say).
func withAccessLogPool(pool *pgxpool.Pool) envOption {
	return func(c *envConfig) { c.accessPool = pool }
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
	if !cfg.analyticsSet {
		cfg.analytics = mustAnalyticsReader(t, testkit.MustReplicaPool(t), 11)
	}
	cfg.server.Addr = "127.0.0.1:0"
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
	pool := cfg.storePool
	if pool == nil {
		pool = testkit.MustAppPool(t)
	}
	store, err := eventstore.New(pool, reg, keys, cfg.storeCfg)
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
	readModels := cfg.readModels
	if readModels == nil {
		readModels = testkit.MustAppPool(t)
	}
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
	accessPool := cfg.accessPool
	if accessPool == nil {
		accessPool = testkit.MustAppPool(t)
	}
	access, err := accesslog.New(accessPool, logging.New(cfg.log, slog.LevelDebug), accesslog.Config{FlushInterval: 10 * time.Millisecond, StallAfter: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A test that failed with the log's database unreachable must not
		// hang here.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = access.Close(ctx)
	})
	checkpointKey := filepath.Join(dir, "checkpoint.pem")
	if _, err := signing.CreateKeyFiles(checkpointKey); err != nil {
		t.Fatal(err)
	}
	signer, err := signing.LoadSigner(checkpointKey)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.NewServer(api.Deps{
		Logger:   logging.New(cfg.log, slog.LevelDebug),
		Commands: commands.New(store, nil), Tokens: verifier, Tenants: tenants.NewDirectory(testkit.MustAppPool(t)),
		Revocations: revocation.New(rdb, prefix+"revoked:"),
		Limits:      limits, Idempotency: idem, ReadModels: readModels, Analytics: cfg.analytics, AsyncAPI: mustAsyncAPI(t),
		Access: access, History: store, Auditor: audit.Verifier{History: store, Keys: signer.Public()},
	}, cfg.server)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &apiEnv{t: t, server: srv, url: hs.URL, minter: auth.NewMinter(key), store: store, redis: rdb, prefix: prefix,
		devKey: readDevKey(t, devKey), kid: key.KeyID(), access: access, checkpointSigner: signer}
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
	Result  chartstream.CommandResult
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
