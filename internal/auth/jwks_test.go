package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwksServer serves a JSON Web Key Set that a test can rotate, and counts
// the fetches so tests can see refreshes happen (or not).
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int32
	mu      sync.Mutex
	keys    []map[string]string
	status  int
}

func MustJWKSServer(tb testing.TB) *jwksServer {
	tb.Helper()
	s := &jwksServer{status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.status != http.StatusOK {
			w.WriteHeader(s.status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": s.keys})
	}))
	tb.Cleanup(s.Close)
	return s
}

// publish replaces the served key set.
func (s *jwksServer) publish(keys ...map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = keys
}

var b64 = base64.RawURLEncoding.EncodeToString

func rsaJWK(kid string, pub *rsa.PublicKey) map[string]string {
	return map[string]string{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}
}

func ecJWK(kid string, pub *ecdsa.PublicKey) map[string]string {
	point, _ := pub.Bytes()
	return map[string]string{
		"kty": "EC", "use": "sig", "crv": "P-256", "kid": kid,
		"x": b64(point[1:33]), "y": b64(point[33:]),
	}
}

func TestVerifyJWKSRotation(t *testing.T) {
	t.Parallel()
	keyA, keyB, keyC := MustRSAKey(t), MustECKey(t), MustRSAKey(t)
	srv := MustJWKSServer(t)
	srv.publish(rsaJWK("a", &keyA.PublicKey))
	// A long unknown-kid interval: one refresh is allowed at once (burst
	// 1), then the limiter must refuse the next.
	v := MustVerifier(t, Config{JWKSURL: srv.URL, JWKSUnknownKIDInterval: time.Hour})
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("fetches after NewVerifier = %d, want 1", n)
	}
	ctx := context.Background()
	now := time.Now()

	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, keyA, "a", validClaims(now))); err != nil {
		t.Fatalf("token by key a: %v", err)
	}
	// A key's kid decides which key is tried: a token by key C under kid
	// "a" must fail on its signature, not on lookup.
	_, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, keyC, "a", validClaims(now)))
	wantUnauthorized(t, err, msgSignature)
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("fetches after known-kid tokens = %d, want 1", n)
	}

	// Rotation: the provider starts signing with key b, which we have not
	// seen; the unknown kid triggers one refetch and the token verifies.
	srv.publish(rsaJWK("a", &keyA.PublicKey), ecJWK("b", &keyB.PublicKey))
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodES256, keyB, "b", validClaims(now))); err != nil {
		t.Fatalf("token by rotated key b: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("fetches after rotation = %d, want 2", n)
	}

	// A forged kid within the interval is refused without another fetch.
	_, err = v.Verify(ctx, sign(t, jwt.SigningMethodRS256, keyC, "c", validClaims(now)))
	wantUnauthorized(t, err, msgUnknownKey)
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("fetches after forged kid = %d, want 2 (rate limit)", n)
	}

	// A JWK's alg pins its algorithm: key a is RS256-only, so a PS256
	// token under kid "a" is refused even when PS256 is allowed.
	pss := MustVerifier(t, Config{JWKSURL: srv.URL, Algorithms: []string{"RS256", "PS256"}})
	_, err = pss.Verify(ctx, sign(t, jwt.SigningMethodPS256, keyA, "a", validClaims(now)))
	wantUnauthorized(t, err, msgUnknownKey)

	// Without a kid every key of the right family is tried.
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodES256, keyB, "", validClaims(now))); err != nil {
		t.Fatalf("token without kid: %v", err)
	}
}

func TestNewVerifierJWKSFailsFast(t *testing.T) {
	t.Parallel()
	srv := MustJWKSServer(t)
	srv.status = http.StatusInternalServerError
	_, err := NewVerifier(context.Background(), Config{Issuer: testIssuer, Audience: testAudience, JWKSURL: srv.URL})
	if err == nil {
		t.Fatal("NewVerifier succeeded against a failing JWKS endpoint")
	}
}

func TestCloseStopsBackgroundRefresh(t *testing.T) {
	t.Parallel()
	srv := MustJWKSServer(t)
	srv.publish(rsaJWK("a", &MustRSAKey(t).PublicKey))
	v := MustVerifier(t, Config{JWKSURL: srv.URL, JWKSRefreshInterval: 20 * time.Millisecond})
	deadline := time.Now().Add(5 * time.Second)
	for srv.fetches.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("background refresh never ran (fetches %d)", srv.fetches.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	v.Close()
	v.Close() // idempotent
	// Proving that nothing happens needs a wait; the first one lets a fetch
	// already in flight at Close finish.
	time.Sleep(50 * time.Millisecond)
	settled := srv.fetches.Load()
	time.Sleep(100 * time.Millisecond)
	if n := srv.fetches.Load(); n != settled {
		t.Fatalf("fetches went from %d to %d after Close", settled, n)
	}
}

// A key from the JWKS meets the bar a key file does: an RSA key under 2048
// bits is refused, whether the token names it by kid or not.
func TestVerifyJWKSRefusesWeakRSAKeys(t *testing.T) {
	t.Parallel()
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	srv := MustJWKSServer(t)
	srv.publish(rsaJWK("weak", &weak.PublicKey))
	v := MustVerifier(t, Config{JWKSURL: srv.URL})
	for _, kid := range []string{"weak", ""} {
		tok := sign(t, jwt.SigningMethodRS256, weak, kid, validClaims(time.Now()))
		if _, err := v.Verify(context.Background(), tok); err == nil {
			t.Errorf("a token signed with a 1024-bit RSA key (kid %q) verified", kid)
		}
	}
}
