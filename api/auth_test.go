package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/revocation"
	"github.com/chartstream/chartstream/internal/tenants"
	"github.com/chartstream/chartstream/internal/testkit"
)

// unauthorizedType is the problem type of every refused credential. It is
// spelled out, not computed, because clients switch on it.
const unauthorizedType = "urn:chartstream:problem:unauthorized"

// claims are the claims of a valid token for a subject of tenant, as the
// minter would write them, for tests to spoil one at a time.
func (e *apiEnv) claims(tenant chartstream.TenantID, subject string, roles ...chartstream.Role) jwt.MapClaims {
	now := time.Now()
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	return jwt.MapClaims{
		"iss": testIssuer, "aud": testAudience, "sub": subject, "jti": uuid.NewString(),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"tenant_id": tenant.String(), "roles": names,
	}
}

// sign signs claims with the dev key, as the minter does.
func (e *apiEnv) sign(claims jwt.MapClaims) string {
	e.t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = e.kid
	s, err := tok.SignedString(e.devKey)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// signWith signs claims with any key and algorithm, kid set when not empty.
func signWith(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Every way a bearer token can be wrong is a 401 problem of one stable type
// that names no claim value, and writes nothing.
func TestEveryTokenRejectionIs401WithoutClaimValues(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	tenant := testkit.MustTenant(t)
	subject := "sub-" + uuid.NewString()
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(e.devKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	spoil := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := e.claims(tenant, subject, chartstream.RoleClinician)
		edit(c)
		return c
	}
	signed := func(edit func(jwt.MapClaims)) string { return e.sign(spoil(edit)) }
	past := time.Now().Add(-2 * time.Hour)
	cases := []struct {
		name          string
		authorization string // the whole header; "" sends none
		detail        string
	}{
		{"no Authorization header", "", "a bearer token is required"},
		{"Basic scheme", "Basic " + "dXNlcjpwYXNz", "a bearer token is required"},
		{"Bearer without token", "Bearer ", "a bearer token is required"},
		{"malformed token", "Bearer not-a-jwt", "token malformed"},
		{"three garbage segments", "Bearer a.b.c", "token malformed"},
		{"expired", "Bearer " + signed(func(c jwt.MapClaims) {
			c["iat"], c["nbf"], c["exp"] = past.Add(-time.Hour).Unix(), past.Add(-time.Hour).Unix(), past.Unix()
		}), "token expired"},
		{"no expiry", "Bearer " + signed(func(c jwt.MapClaims) { delete(c, "exp") }), "token has no expiry"},
		{"not yet valid", "Bearer " + signed(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }), "token not yet valid"},
		{"wrong issuer", "Bearer " + signed(func(c jwt.MapClaims) { c["iss"] = "evil-issuer-" + subject }), "token issuer not accepted"},
		{"wrong audience", "Bearer " + signed(func(c jwt.MapClaims) { c["aud"] = "other-audience-" + subject }), "token audience not accepted"},
		{"alg none", "Bearer " + signWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, e.kid, spoil(func(jwt.MapClaims) {})), "token algorithm not accepted"},
		{"HS256 keyed with the public key", "Bearer " + signWith(t, jwt.SigningMethodHS256, pubPEM, e.kid, spoil(func(jwt.MapClaims) {})), "token algorithm not accepted"},
		{"signature by another key under the dev kid", "Bearer " + signWith(t, jwt.SigningMethodES256, other, e.kid, spoil(func(jwt.MapClaims) {})), "token signature invalid"},
		{"token from another key", "Bearer " + signWith(t, jwt.SigningMethodES256, other, "kid-"+subject, spoil(func(jwt.MapClaims) {})), "token signing key unknown"},
		{"no subject", "Bearer " + signed(func(c jwt.MapClaims) { delete(c, "sub") }), "token has no subject"},
		{"no tenant claim", "Bearer " + signed(func(c jwt.MapClaims) { delete(c, "tenant_id") }), "token has no tenant"},
		{"non-UUID tenant", "Bearer " + signed(func(c jwt.MapClaims) { c["tenant_id"] = "clinic-" + subject }), "token tenant invalid"},
		{"unknown tenant", "Bearer " + e.token(chartstream.NewTenantID(), chartstream.RoleClinician), "token tenant is unknown"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var headers []string
			if tc.authorization != "" {
				headers = []string{"Authorization", tc.authorization}
			}
			r := e.do(http.MethodPost, "/v1/patients", "", newPatient(), headers...).wantProblem(t, http.StatusUnauthorized, chartstream.EUNAUTHORIZED)
			if r.Problem.Type != unauthorizedType {
				t.Errorf("type %q, want %q", r.Problem.Type, unauthorizedType)
			}
			if r.Problem.Detail != tc.detail {
				t.Errorf("detail %q, want %q", r.Problem.Detail, tc.detail)
			}
			if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("WWW-Authenticate %q, want a Bearer challenge", r.Header.Get("WWW-Authenticate"))
			}
			body := string(r.Raw)
			for _, secret := range []string{subject, tenant.String(), testIssuer} {
				if strings.Contains(body, secret) {
					t.Errorf("body echoes %q: %s", secret, body)
				}
			}
			if raw, ok := strings.CutPrefix(tc.authorization, "Bearer "); ok && len(raw) > 8 && strings.Contains(body, raw) {
				t.Errorf("body echoes the token: %s", body)
			}
		})
	}
	e.wantEvents(tenant, 0, "after refused tokens")
}

// A suspended tenant's valid tokens get 403 once the tenant cache lets go
// (at most 5s), and nothing is written.
func TestSuspendedTenantIsForbidden(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	tenant, tok := e.newTenant(chartstream.RoleClinician)
	// An invalid body: 400 while the tenant is active, and never a write.
	probe := func() reply { return e.do(http.MethodPost, "/v1/patients", tok, map[string]any{"mrn": "X"}) }
	probe().want(t, http.StatusBadRequest)
	if _, err := tenants.NewAdmin(testkit.MustAdminPool(t)).SetStatus(testkit.Context(t), tenant.String(), chartstream.TenantSuspended); err != nil {
		t.Fatal(err)
	}
	eventually(t, 7*time.Second, "suspension bites", func() bool { return probe().Status == http.StatusForbidden })
	r := e.do(http.MethodPost, "/v1/patients", tok, newPatient()).wantProblem(t, http.StatusForbidden, chartstream.EFORBIDDEN)
	if strings.Contains(string(r.Raw), tenant.String()) {
		t.Errorf("body names the tenant: %s", r.Raw)
	}
	e.wantEvents(tenant, 0, "in the suspended tenant")
}

// A revoked token is refused at once; the same user's other tokens are not.
func TestRevokedTokenIs401(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	tenant := testkit.MustTenant(t)
	tok := e.tokenFor(tenant, "dr-revoked", chartstream.RoleClinician)
	e.do(http.MethodPost, "/v1/patients", tok, newPatient()).want(t, http.StatusCreated)

	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &claims); err != nil {
		t.Fatal(err)
	}
	if claims.ID == "" || claims.ExpiresAt == nil {
		t.Fatalf("minted token has jti %q and exp %v", claims.ID, claims.ExpiresAt)
	}
	if err := revocation.New(e.redis, e.prefix+"revoked:").Revoke(testkit.Context(t), claims.ID, claims.ExpiresAt.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	r := e.do(http.MethodPost, "/v1/patients", tok, newPatient()).wantProblem(t, http.StatusUnauthorized, chartstream.EUNAUTHORIZED)
	if r.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without a WWW-Authenticate challenge")
	}
	if strings.Contains(string(r.Raw), claims.ID) {
		t.Errorf("body echoes the jti: %s", r.Raw)
	}
	e.do(http.MethodPost, "/v1/patients", e.tokenFor(tenant, "dr-revoked", chartstream.RoleClinician), newPatient()).want(t, http.StatusCreated)
	e.wantEvents(tenant, 2, "from registrations before and after the revoked token's")
}
