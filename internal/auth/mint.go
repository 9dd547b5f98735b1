package auth

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

// DefaultMintTTL is the lifetime of a minted token when MintParams.TTL is 0.
const DefaultMintTTL = time.Hour

// Minter signs development access tokens with a DevKey. It is safe for
// concurrent use.
type Minter struct {
	key *DevKey
	now func() time.Time
}

// NewMinter returns a Minter signing with key. A nil key is a wiring bug and
// panics.
func NewMinter(key *DevKey) *Minter {
	if key == nil {
		panic("auth: NewMinter: nil key")
	}
	return &Minter{key: key, now: time.Now}
}

// MintParams describes one token to mint.
type MintParams struct {
	// Tenant is the tenant the token acts in. Required.
	Tenant chartstream.TenantID
	// Subject is the "sub" claim. Required.
	Subject string
	// Roles must each be one of the chartstream.Role constants. Optional.
	Roles []chartstream.Role
	// TTL is the token's lifetime. Default DefaultMintTTL; must not be
	// negative.
	TTL time.Duration
	// Issuer and Audience must match the verifying Config. Required.
	Issuer   string
	Audience string
	// TenantClaim and RolesClaim name the claims, as in Config. Defaults
	// DefaultTenantClaim and DefaultRolesClaim; set them when the verifier
	// is configured with other names.
	TenantClaim string
	RolesClaim  string
}

// Mint returns a compact ES256 JWT with kid, a random jti, iat, nbf and exp.
// Invalid params yield an EINVALID *chartstream.Error naming the field; a
// signing failure is returned wrapped.
func (m *Minter) Mint(p MintParams) (string, error) {
	var fields []chartstream.FieldError
	bad := func(field, reason string) {
		fields = append(fields, chartstream.FieldError{Field: field, Reason: reason})
	}
	if p.Tenant.IsZero() {
		bad("tenant", "is required")
	}
	if p.Subject == "" {
		bad("subject", "is required")
	}
	if p.Issuer == "" {
		bad("issuer", "is required")
	}
	if p.Audience == "" {
		bad("audience", "is required")
	}
	if p.TTL < 0 {
		bad("ttl", "must not be negative")
	}
	roles := make([]string, 0, len(p.Roles))
	for _, r := range p.Roles {
		if !knownRole(r) {
			// The verifier would drop it silently; refusing here tells
			// the developer at once.
			bad("roles", "unknown role")
			break
		}
		roles = append(roles, string(r))
	}
	if len(fields) > 0 {
		return "", chartstream.Invalid(fields...)
	}
	if p.TTL == 0 {
		p.TTL = DefaultMintTTL
	}
	if p.TenantClaim == "" {
		p.TenantClaim = DefaultTenantClaim
	}
	if p.RolesClaim == "" {
		p.RolesClaim = DefaultRolesClaim
	}

	now := m.now().Truncate(time.Second)
	claims := jwt.MapClaims{
		"iss":         p.Issuer,
		"aud":         p.Audience,
		"sub":         p.Subject,
		"jti":         uuid.NewString(),
		"iat":         now.Unix(),
		"nbf":         now.Unix(),
		"exp":         now.Add(p.TTL).Unix(),
		p.TenantClaim: p.Tenant.String(),
		p.RolesClaim:  roles,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = m.key.kid
	signed, err := tok.SignedString(m.key.private)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return signed, nil
}
