package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chartstream/chartstream"
)

func TestCreateDevKeyIsIdempotentAndPrivate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "dev.pem")
	if err := CreateDevKey(path); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode = %04o, want 0600", perm)
	}
	if err := CreateDevKey(path); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(path)
	if !bytes.Equal(first, second) {
		t.Error("second CreateDevKey replaced the key")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key (temp file left behind?)", len(entries))
	}
	k1, err := LoadDevKey(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := LoadDevKey(path)
	if k1.KeyID() == "" || k1.KeyID() != k2.KeyID() {
		t.Errorf("kid %q then %q, want the same non-empty thumbprint", k1.KeyID(), k2.KeyID())
	}
}

func TestLoadDevKeyRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, data string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	readable, _ := MustDevKey(t)
	if err := os.Chmod(readable, 0o644); err != nil {
		t.Fatal(err)
	}
	rsaPEM := func() string {
		_, data := MustPublicKeyPEM(t, &MustRSAKey(t).PublicKey)
		return string(data)
	}()
	tests := []struct {
		name, path string
	}{
		{"missing", filepath.Join(dir, "absent.pem")},
		{"group readable", readable},
		{"not PEM", write("junk.pem", "hello", 0o600)},
		{"public key block", write("pub.pem", rsaPEM, 0o600)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := LoadDevKey(tt.path); err == nil {
				t.Fatal("LoadDevKey succeeded")
			}
		})
	}
}

func TestDevKeyNeverPrintsPrivateScalar(t *testing.T) {
	t.Parallel()
	_, k := MustDevKey(t)
	d := k.private.D.String()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(verb, k); strings.Contains(out, d) || !strings.Contains(out, k.KeyID()) {
			t.Errorf("%s printed %q", verb, out)
		}
	}
}

func TestMintVerifiesWithDevKey(t *testing.T) {
	t.Parallel()
	path, key := MustDevKey(t)
	v := MustVerifier(t, Config{DevKeyFile: path, AllowDevKey: true})
	tenant := chartstream.NewTenantID()
	before := time.Now().Truncate(time.Second)
	raw, err := NewMinter(key).Mint(MintParams{
		Tenant: tenant, Subject: "dev-user", Roles: []chartstream.Role{chartstream.RoleNurse, chartstream.RoleAuditor},
		TTL: 15 * time.Minute, Issuer: testIssuer, Audience: testAudience,
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	p := got.Principal
	if p.Tenant != tenant || p.Subject != "dev-user" || p.TokenID == "" ||
		!slices.Equal(p.Roles, []chartstream.Role{chartstream.RoleNurse, chartstream.RoleAuditor}) {
		t.Errorf("principal = %+v", p)
	}
	if d := got.ExpiresAt.Sub(before); d < 15*time.Minute || d > 15*time.Minute+2*time.Second {
		t.Errorf("ExpiresAt is %v after mint, want 15m", d)
	}
	tok, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Header["alg"] != "ES256" || tok.Header["kid"] != key.KeyID() {
		t.Errorf("header = %v", tok.Header)
	}
	for _, claim := range []string{"iat", "nbf", "exp", "jti"} {
		if _, ok := tok.Claims.(jwt.MapClaims)[claim]; !ok {
			t.Errorf("minted token lacks %s", claim)
		}
	}
	again, _ := NewMinter(key).Mint(MintParams{Tenant: tenant, Subject: "dev-user", Issuer: testIssuer, Audience: testAudience})
	if g2, err := v.Verify(context.Background(), again); err != nil || g2.Principal.TokenID == p.TokenID {
		t.Errorf("second token: err %v, jti repeated %v", err, g2.Principal.TokenID == p.TokenID)
	}
}

func TestDevKeyTokensRefusedWithoutAllowDevKey(t *testing.T) {
	t.Parallel()
	devPath, devKey := MustDevKey(t)
	idp := MustECKey(t)
	pemPath, _ := MustPublicKeyPEM(t, &idp.PublicKey)
	raw, err := NewMinter(devKey).Mint(MintParams{
		Tenant: chartstream.NewTenantID(), Subject: "dev-user", Issuer: testIssuer, Audience: testAudience,
	})
	if err != nil {
		t.Fatal(err)
	}

	// Production: only the provider's key; the dev token must not verify.
	prod := MustVerifier(t, Config{PublicKeyFile: pemPath})
	_, err = prod.Verify(context.Background(), raw)
	wantUnauthorized(t, err, msgSignature)

	// Naming the dev key without allowing it is a start-up error.
	_, err = NewVerifier(context.Background(), Config{
		Issuer: testIssuer, Audience: testAudience, PublicKeyFile: pemPath, DevKeyFile: devPath,
	})
	if err == nil || !strings.Contains(err.Error(), "AllowDevKey") {
		t.Fatalf("NewVerifier with DevKeyFile and no AllowDevKey: err = %v", err)
	}

	// Both allowed: the dev token and the provider's token verify, and a
	// token from another key claiming the dev kid does not.
	both := MustVerifier(t, Config{PublicKeyFile: pemPath, DevKeyFile: devPath, AllowDevKey: true})
	if _, err := both.Verify(context.Background(), raw); err != nil {
		t.Errorf("dev token: %v", err)
	}
	provider := sign(t, jwt.SigningMethodES256, idp, "idp-kid", validClaims(time.Now()))
	if _, err := both.Verify(context.Background(), provider); err != nil {
		t.Errorf("provider token: %v", err)
	}
	forged := sign(t, jwt.SigningMethodES256, idp, devKey.KeyID(), validClaims(time.Now()))
	_, err = both.Verify(context.Background(), forged)
	wantUnauthorized(t, err, msgSignature)
}

func TestMintRefusesBadParams(t *testing.T) {
	t.Parallel()
	_, key := MustDevKey(t)
	m := NewMinter(key)
	ok := MintParams{Tenant: chartstream.NewTenantID(), Subject: "s", Issuer: testIssuer, Audience: testAudience}
	tests := []struct {
		name  string
		edit  func(*MintParams)
		field string
	}{
		{"no tenant", func(p *MintParams) { p.Tenant = chartstream.TenantID{} }, "tenant"},
		{"no subject", func(p *MintParams) { p.Subject = "" }, "subject"},
		{"no issuer", func(p *MintParams) { p.Issuer = "" }, "issuer"},
		{"no audience", func(p *MintParams) { p.Audience = "" }, "audience"},
		{"negative ttl", func(p *MintParams) { p.TTL = -time.Second }, "ttl"},
		{"unknown role", func(p *MintParams) { p.Roles = []chartstream.Role{"root"} }, "roles"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := ok
			tt.edit(&p)
			_, err := m.Mint(p)
			var ce *chartstream.Error
			if !errors.As(err, &ce) || ce.Code != chartstream.EINVALID ||
				len(ce.Fields) != 1 || ce.Fields[0].Field != tt.field {
				t.Fatalf("Mint error = %#v, want EINVALID on %s", err, tt.field)
			}
		})
	}
}
