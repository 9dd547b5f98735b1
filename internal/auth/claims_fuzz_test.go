package auth

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chartstream/chartstream"
)

// claimMessages are the messages principal may refuse claims with: fixed,
// never a claim's value.
var claimMessages = []string{msgNoSubject, msgNoTenant, msgTenantInvalid, msgRolesInvalid, msgIDInvalid, msgNoID, msgSubjectInvalid}

// FuzzClaims maps verified claims, decoded as the JWT parser decodes a
// token's payload, to a Principal: never a panic; a refusal is an
// EUNAUTHORIZED *chartstream.Error with one of the fixed messages; a
// Principal has a subject, a tenant and known roles once each, and its own
// claims map to the same Principal again.
func FuzzClaims(f *testing.F) {
	v := &Verifier{cfg: Config{}}
	v.cfg.setDefaults()
	f.Fuzz(func(t *testing.T, payload []byte) {
		var claims jwt.MapClaims
		if json.Unmarshal(payload, &claims) != nil {
			return // the parser refuses it before the claims are mapped
		}
		p, err := v.principal(claims)
		if err != nil {
			var e *chartstream.Error
			if !errors.As(error(err), &e) || e.Code != chartstream.EUNAUTHORIZED || !slices.Contains(claimMessages, e.Message) {
				t.Fatalf("refusal %v, want EUNAUTHORIZED with a fixed message", err)
			}
			return
		}
		if p.Subject == "" || p.Tenant.IsZero() {
			t.Fatalf("principal %+v lacks a subject or tenant", p)
		}
		roles := make([]any, len(p.Roles))
		for i, r := range p.Roles {
			if !knownRole(r) || slices.Index(p.Roles, r) != i {
				t.Fatalf("principal %+v has an unknown or repeated role %q", p, r)
			}
			roles[i] = string(r)
		}
		again := jwt.MapClaims{"sub": p.Subject, v.cfg.TenantClaim: p.Tenant.String(), v.cfg.RolesClaim: roles}
		if p.TokenID != "" {
			again["jti"] = p.TokenID
		}
		if p2, err := v.principal(again); err != nil || !reflect.DeepEqual(p, p2) {
			t.Fatalf("principal %+v maps back to %+v (%v)", p, p2, err)
		}
	})
}
