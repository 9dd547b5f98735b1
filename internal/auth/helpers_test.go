package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chartstream/chartstream"
)

const (
	testIssuer   = "https://idp.test/realms/chartstream"
	testAudience = "chartstream-api"
	testTenant   = "7f1d3c2e-5b6a-4c8d-9e0f-1a2b3c4d5e6f"
)

func MustRSAKey(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func MustECKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// MustPublicKeyPEM writes pub as a PKIX PEM file and returns its path and
// bytes.
func MustPublicKeyPEM(tb testing.TB, pub any) (string, []byte) {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	path := filepath.Join(tb.TempDir(), "idp.pem")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return path, data
}

// MustDevKey creates and loads a dev key in a temp dir.
func MustDevKey(tb testing.TB) (string, *DevKey) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "dev.pem")
	if err := CreateDevKey(path); err != nil {
		tb.Fatal(err)
	}
	k, err := LoadDevKey(path)
	if err != nil {
		tb.Fatal(err)
	}
	return path, k
}

// MustVerifier builds a Verifier for cfg, filling Issuer and Audience when
// empty, and closes it when the test ends.
func MustVerifier(tb testing.TB, cfg Config) *Verifier {
	tb.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = testIssuer
	}
	if cfg.Audience == "" {
		cfg.Audience = testAudience
	}
	v, err := NewVerifier(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("NewVerifier: %v", err)
	}
	tb.Cleanup(v.Close)
	return v
}

// validClaims returns claims a default-configured Verifier accepts at now.
func validClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":       testIssuer,
		"aud":       []string{testAudience, "account"},
		"sub":       "user-42",
		"jti":       "jti-1",
		"iat":       now.Add(-time.Minute).Unix(),
		"nbf":       now.Add(-time.Minute).Unix(),
		"exp":       now.Add(10 * time.Minute).Unix(),
		"tenant_id": testTenant,
		"roles":     []string{"clinician"},
	}
}

// sign signs claims with method and key, setting kid when non-empty.
func sign(tb testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	tb.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatalf("sign: %v", err)
	}
	return s
}

// wantUnauthorized fails unless err is an EUNAUTHORIZED *chartstream.Error
// with message msg.
func wantUnauthorized(tb testing.TB, err error, msg string) {
	tb.Helper()
	var ce *chartstream.Error
	if !errors.As(err, &ce) {
		tb.Fatalf("error = %v (%T), want *chartstream.Error", err, err)
	}
	if ce.Code != chartstream.EUNAUTHORIZED || ce.Message != msg {
		tb.Fatalf("error = %q/%q, want %q/%q (cause: %v)", ce.Code, ce.Message, chartstream.EUNAUTHORIZED, msg, ce.Err)
	}
}
