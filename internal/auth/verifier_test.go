package auth

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chartstream/chartstream"
)

func TestVerifyStaticKey(t *testing.T) {
	t.Parallel()
	idp := MustRSAKey(t)
	other := MustRSAKey(t)
	ecKey := MustECKey(t)
	pemPath, pemBytes := MustPublicKeyPEM(t, &idp.PublicKey)
	v := MustVerifier(t, Config{PublicKeyFile: pemPath})
	cognito := MustVerifier(t, Config{PublicKeyFile: pemPath, TenantClaim: "custom:tenant_id"})

	now := time.Now()
	with := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := validClaims(now)
		edit(c)
		return c
	}
	rs256 := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodRS256, idp, "", c) }
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", validClaims(now))
	valid := rs256(validClaims(now))
	parts := strings.Split(valid, ".")

	tests := []struct {
		name      string
		verifier  *Verifier
		token     string
		wantErr   string // "" means the token verifies
		wantRoles []chartstream.Role
	}{
		{name: "valid", token: valid, wantRoles: []chartstream.Role{chartstream.RoleClinician}},
		{name: "audience as single string", token: rs256(with(func(c jwt.MapClaims) { c["aud"] = testAudience })),
			wantRoles: []chartstream.Role{chartstream.RoleClinician}},
		{name: "nbf within leeway", token: rs256(with(func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Second).Unix() })),
			wantRoles: []chartstream.Role{chartstream.RoleClinician}},
		{name: "roles as array", token: rs256(with(func(c jwt.MapClaims) { c["roles"] = []string{"nurse", "auditor"} })),
			wantRoles: []chartstream.Role{chartstream.RoleNurse, chartstream.RoleAuditor}},
		{name: "roles space separated", token: rs256(with(func(c jwt.MapClaims) { c["roles"] = "tenant_admin  analyst" })),
			wantRoles: []chartstream.Role{chartstream.RoleTenantAdmin, chartstream.RoleAnalyst}},
		{name: "roles comma separated", token: rs256(with(func(c jwt.MapClaims) { c["roles"] = "nurse, clinician,nurse" })),
			wantRoles: []chartstream.Role{chartstream.RoleNurse, chartstream.RoleClinician}},
		{name: "unknown roles ignored", token: rs256(with(func(c jwt.MapClaims) { c["roles"] = []string{"superuser", "analyst", "offline_access"} })),
			wantRoles: []chartstream.Role{chartstream.RoleAnalyst}},
		{name: "no roles claim", token: rs256(with(func(c jwt.MapClaims) { delete(c, "roles") }))},
		{name: "cognito tenant claim", verifier: cognito, token: rs256(with(func(c jwt.MapClaims) {
			c["custom:tenant_id"] = c["tenant_id"]
			delete(c, "tenant_id")
		})), wantRoles: []chartstream.Role{chartstream.RoleClinician}},

		{name: "expired", token: rs256(with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), wantErr: msgExpired},
		{name: "no exp", token: rs256(with(func(c jwt.MapClaims) { delete(c, "exp") })), wantErr: msgNoExpiry},
		{name: "nbf beyond leeway", token: rs256(with(func(c jwt.MapClaims) { c["nbf"] = now.Add(2 * time.Minute).Unix() })), wantErr: msgNotYetValid},
		{name: "iat in the future", token: rs256(with(func(c jwt.MapClaims) { c["iat"] = now.Add(2 * time.Minute).Unix() })), wantErr: msgIssuedFuture},
		{name: "wrong issuer", token: rs256(with(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" })), wantErr: msgIssuer},
		{name: "wrong audience", token: rs256(with(func(c jwt.MapClaims) { c["aud"] = "other-api" })), wantErr: msgAudience},
		{name: "alg none", token: none, wantErr: msgAlgorithm},
		{name: "HS256 keyed with public key PEM", token: sign(t, jwt.SigningMethodHS256, pemBytes, "", validClaims(now)), wantErr: msgAlgorithm},
		{name: "PS256 not in default allow-list", token: sign(t, jwt.SigningMethodPS256, idp, "", validClaims(now)), wantErr: msgAlgorithm},
		{name: "ES256 against an RSA key", token: sign(t, jwt.SigningMethodES256, ecKey, "", validClaims(now)), wantErr: msgAlgorithm},
		{name: "RS256 by another key", token: sign(t, jwt.SigningMethodRS256, other, "", validClaims(now)), wantErr: msgSignature},
		{name: "payload swapped", token: parts[0] + "." + strings.Split(rs256(with(func(c jwt.MapClaims) { c["sub"] = "admin" })), ".")[1] + "." + parts[2],
			wantErr: msgSignature},
		{name: "crit header", token: func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, validClaims(now))
			tok.Header["crit"] = []string{"exp"}
			s, _ := tok.SignedString(idp)
			return s
		}(), wantErr: msgMalformed},
		{name: "missing sub", token: rs256(with(func(c jwt.MapClaims) { delete(c, "sub") })), wantErr: msgNoSubject},
		{name: "empty sub", token: rs256(with(func(c jwt.MapClaims) { c["sub"] = "" })), wantErr: msgNoSubject},
		{name: "missing tenant", token: rs256(with(func(c jwt.MapClaims) { delete(c, "tenant_id") })), wantErr: msgNoTenant},
		{name: "tenant not a UUID", token: rs256(with(func(c jwt.MapClaims) { c["tenant_id"] = "st-mary" })), wantErr: msgTenantInvalid},
		{name: "nil UUID tenant", token: rs256(with(func(c jwt.MapClaims) { c["tenant_id"] = "00000000-0000-0000-0000-000000000000" })), wantErr: msgTenantInvalid},
		{name: "tenant not a string", token: rs256(with(func(c jwt.MapClaims) { c["tenant_id"] = 42 })), wantErr: msgTenantInvalid},
		{name: "cognito verifier ignores plain tenant_id", verifier: cognito, token: valid, wantErr: msgNoTenant},
		{name: "roles of wrong type", token: rs256(with(func(c jwt.MapClaims) { c["roles"] = 7 })), wantErr: msgRolesInvalid},
		{name: "jti not a string", token: rs256(with(func(c jwt.MapClaims) { c["jti"] = 7 })), wantErr: msgIDInvalid},
		{name: "empty", token: "", wantErr: msgMalformed},
		{name: "garbage", token: "not-a-jwt", wantErr: msgMalformed},
		{name: "two segments", token: parts[0] + "." + parts[1], wantErr: msgMalformed},
		{name: "bad base64", token: parts[0] + ".!!!." + parts[2], wantErr: msgMalformed},
		{name: "oversized", token: strings.Repeat("a", maxTokenBytes+1), wantErr: msgMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ver := tt.verifier
			if ver == nil {
				ver = v
			}
			got, err := ver.Verify(context.Background(), tt.token)
			if tt.wantErr != "" {
				wantUnauthorized(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			p := got.Principal
			if p.Subject != "user-42" || p.Tenant.String() != testTenant || p.TokenID != "jti-1" {
				t.Errorf("principal = %+v", p)
			}
			if !slices.Equal(p.Roles, tt.wantRoles) {
				t.Errorf("roles = %v, want %v", p.Roles, tt.wantRoles)
			}
			if want := now.Add(10 * time.Minute).Truncate(time.Second); !got.ExpiresAt.Equal(want) {
				t.Errorf("ExpiresAt = %v, want %v", got.ExpiresAt, want)
			}
		})
	}
}

// TestVerifyMessagesArePHIFree checks a rejected token's message never
// carries the claim values that caused the rejection.
func TestVerifyMessagesArePHIFree(t *testing.T) {
	t.Parallel()
	idp := MustRSAKey(t)
	pemPath, _ := MustPublicKeyPEM(t, &idp.PublicKey)
	v := MustVerifier(t, Config{PublicKeyFile: pemPath})
	c := validClaims(time.Now())
	c["tenant_id"] = "Jane Doe 1970-01-01"
	_, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, idp, "", c))
	wantUnauthorized(t, err, msgTenantInvalid)
	if msg := chartstream.ErrorMessage(err); strings.Contains(msg, "Jane") {
		t.Fatalf("message %q echoes a claim value", msg)
	}
}

func TestVerifyStaticECKey(t *testing.T) {
	t.Parallel()
	idp := MustECKey(t)
	pemPath, _ := MustPublicKeyPEM(t, &idp.PublicKey)
	v := MustVerifier(t, Config{PublicKeyFile: pemPath, Algorithms: []string{"ES256"}})
	if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodES256, idp, "any-kid", validClaims(time.Now()))); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestNewVerifierRefusesKeyNoAlgorithmFits(t *testing.T) {
	t.Parallel()
	idp := MustECKey(t)
	pemPath, _ := MustPublicKeyPEM(t, &idp.PublicKey)
	_, err := NewVerifier(context.Background(), Config{
		Issuer: testIssuer, Audience: testAudience, PublicKeyFile: pemPath, Algorithms: []string{"RS256"},
	})
	if err == nil {
		t.Fatal("NewVerifier accepted an EC key with only RS256 allowed")
	}
}

// A token without a jti could never be revoked, so it is refused unless the
// configuration explicitly accepts such tokens.
func TestVerifyRequiresATokenID(t *testing.T) {
	t.Parallel()
	key := MustRSAKey(t)
	file, _ := MustPublicKeyPEM(t, &key.PublicKey)
	claims := validClaims(time.Now())
	delete(claims, "jti")
	tok := sign(t, jwt.SigningMethodRS256, key, "", claims)
	_, err := MustVerifier(t, Config{PublicKeyFile: file}).Verify(context.Background(), tok)
	wantUnauthorized(t, err, msgNoID)
	p, err := MustVerifier(t, Config{PublicKeyFile: file, AllowNoJTI: true}).Verify(context.Background(), tok)
	if err != nil || p.Principal.TokenID != "" {
		t.Errorf("with AllowNoJTI: %+v, %v", p, err)
	}
}

// signRaw signs payload exactly as given (RS256), as an identity provider
// with odd JSON might.
func signRaw(tb testing.TB, key *rsa.PrivateKey, payload string) string {
	tb.Helper()
	head := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodRS256.Sign(head, key)
	if err != nil {
		tb.Fatal(err)
	}
	return head + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// The subject is recorded as the actor of every event its holder writes,
// so a signed payload is taken exactly as signed or refused: the JSON
// decoder would make invalid UTF-8 U+FFFD and keep the last of two claims.
func TestVerifyRefusesPayloadsTheDecoderWouldRepair(t *testing.T) {
	t.Parallel()
	idp := MustRSAKey(t)
	pemPath, _ := MustPublicKeyPEM(t, &idp.PublicKey)
	v := MustVerifier(t, Config{PublicKeyFile: pemPath})
	now := time.Now()
	claims := func(sub string) string {
		return fmt.Sprintf(`{"iss":%q,"aud":%q,"sub":%s,"jti":"j1","exp":%d,"tenant_id":%q,"roles":["clinician"]}`,
			testIssuer, testAudience, sub, now.Add(time.Minute).Unix(), testTenant)
	}
	if _, err := v.Verify(t.Context(), signRaw(t, idp, claims(`"user-42"`))); err != nil {
		t.Fatalf("a plain payload: %v", err)
	}
	for name, payload := range map[string]string{
		"invalid UTF-8 subject": claims("\"user-\xff\xfe\""),
		"subject twice":         strings.Replace(claims(`"user-42"`), `"jti"`, `"sub":"admin","jti"`, 1),
		"trailing data":         claims(`"user-42"`) + "}",
	} {
		if _, err := v.Verify(t.Context(), signRaw(t, idp, payload)); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			wantUnauthorized(t, err, msgMalformed)
		}
	}
	for name, sub := range map[string]string{
		"subject over 255 bytes":        `"` + strings.Repeat("a", 256) + `"`,
		"subject with a control escape": `"user\u0007"`,
	} {
		_, err := v.Verify(t.Context(), signRaw(t, idp, claims(sub)))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		wantUnauthorized(t, err, msgSubjectInvalid)
	}
}

// A verified token is reused for a while, but never past its expiry: the
// cache saves the signature check, not the checks that change with time.
func TestVerifyCachedTokenStillExpires(t *testing.T) {
	t.Parallel()
	idp := MustRSAKey(t)
	pemPath, _ := MustPublicKeyPEM(t, &idp.PublicKey)
	v := MustVerifier(t, Config{PublicKeyFile: pemPath, Leeway: 5 * time.Second})
	start := time.Now()
	claims := validClaims(start)
	claims["exp"] = start.Add(20 * time.Second).Unix()
	raw := sign(t, jwt.SigningMethodRS256, idp, "", claims)
	clock := start
	v.now = func() time.Time { return clock }
	for _, at := range []time.Duration{0, 10 * time.Second} {
		clock = start.Add(at)
		if _, err := v.Verify(t.Context(), raw); err != nil {
			t.Fatalf("at +%s: %v", at, err)
		}
	}
	clock = start.Add(30 * time.Second) // within the cache's minute, past exp + leeway
	_, err := v.Verify(t.Context(), raw)
	wantUnauthorized(t, err, msgExpired)
}
