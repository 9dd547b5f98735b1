package auth

import (
	"errors"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chartstream/chartstream"
)

// Messages of the EUNAUTHORIZED errors Verify returns. They are shown to API
// callers, so they are short, stable and never include claim values.
const (
	msgMalformed      = "token malformed"
	msgAlgorithm      = "token algorithm not accepted"
	msgUnknownKey     = "token signing key unknown"
	msgSignature      = "token signature invalid"
	msgExpired        = "token expired"
	msgNotYetValid    = "token not yet valid"
	msgIssuedFuture   = "token issued in the future"
	msgIssuer         = "token issuer not accepted"
	msgAudience       = "token audience not accepted"
	msgNoExpiry       = "token has no expiry"
	msgNoSubject      = "token has no subject"
	msgSubjectInvalid = "token subject invalid"
	msgNoTenant       = "token has no tenant"
	msgTenantInvalid  = "token tenant invalid"
	msgRolesInvalid   = "token roles invalid"
	msgIDInvalid      = "token id invalid"
	msgNoID           = "token has no id (jti), so it could not be revoked"
	msgInvalid        = "token invalid"
)

// maxSubjectLength bounds the subject, recorded as the actor of every event
// (bytes; OIDC allows 255 ASCII characters). maxClaimLength bounds every
// string in the payload, in characters.
const (
	maxSubjectLength = 255
	maxClaimLength   = 4096
)

// Causes raised by our own key lookup, told apart in unauthorized.
var (
	errUnknownKey  = errors.New("no key for this token")
	errKeyMismatch = errors.New("key cannot verify this algorithm")
	errCritHeader  = errors.New("token has a crit header")
)

// unauthorized wraps cause in an EUNAUTHORIZED error with a stable message.
func unauthorized(msg string, cause error) *chartstream.Error {
	return &chartstream.Error{Code: chartstream.EUNAUTHORIZED, Message: msg, Err: cause}
}

// parseFailure maps a jwt parse error to its message. The order matters: the
// validator joins several claim errors, and the most actionable one (expiry
// before audience, say) should win.
func parseFailure(err error) *chartstream.Error {
	checks := []struct {
		target error
		msg    string
	}{
		{jwt.ErrTokenMalformed, msgMalformed},
		{errCritHeader, msgMalformed},
		{errUnknownKey, msgUnknownKey},
		{errKeyMismatch, msgAlgorithm},
		{jwt.ErrTokenSignatureInvalid, msgSignature},
		{jwt.ErrTokenUnverifiable, msgSignature},
		{jwt.ErrTokenExpired, msgExpired},
		{jwt.ErrTokenNotValidYet, msgNotYetValid},
		{jwt.ErrTokenUsedBeforeIssued, msgIssuedFuture},
		{jwt.ErrTokenInvalidIssuer, msgIssuer},
		{jwt.ErrTokenInvalidAudience, msgAudience},
		{jwt.ErrTokenRequiredClaimMissing, msgNoExpiry},
	}
	for _, c := range checks {
		if errors.Is(err, c.target) {
			return unauthorized(c.msg, err)
		}
	}
	return unauthorized(msgInvalid, err)
}

// principal builds the Principal from verified claims.
func (v *Verifier) principal(claims jwt.MapClaims) (chartstream.Principal, *chartstream.Error) {
	sub, err := claims.GetSubject()
	if err != nil || sub == "" {
		return chartstream.Principal{}, unauthorized(msgNoSubject, err)
	}
	if len(sub) > maxSubjectLength || strings.ContainsFunc(sub, unicode.IsControl) || !utf8.ValidString(sub) {
		return chartstream.Principal{}, unauthorized(msgSubjectInvalid, errors.New("subject too long, not UTF-8 or with control characters"))
	}
	rawTenant, ok := claims[v.cfg.TenantClaim]
	if !ok || rawTenant == nil || rawTenant == "" {
		return chartstream.Principal{}, unauthorized(msgNoTenant, nil)
	}
	tenantStr, ok := rawTenant.(string)
	if !ok {
		return chartstream.Principal{}, unauthorized(msgTenantInvalid, errors.New("tenant claim is not a string"))
	}
	tenant, err := chartstream.ParseTenantID(tenantStr)
	if err != nil {
		return chartstream.Principal{}, unauthorized(msgTenantInvalid, err)
	}
	roles, err := parseRoles(claims[v.cfg.RolesClaim])
	if err != nil {
		return chartstream.Principal{}, unauthorized(msgRolesInvalid, err)
	}
	var jti string
	if raw, ok := claims["jti"]; ok && raw != nil {
		if jti, ok = raw.(string); !ok {
			return chartstream.Principal{}, unauthorized(msgIDInvalid, errors.New("jti is not a string"))
		}
	}
	if jti == "" && !v.cfg.AllowNoJTI {
		return chartstream.Principal{}, unauthorized(msgNoID, nil)
	}
	return chartstream.Principal{Subject: sub, Tenant: tenant, Roles: roles, TokenID: jti}, nil
}

// parseRoles accepts a JSON array of strings or one string separated by
// spaces or commas (the OAuth "scope" style some providers use). Unknown
// roles are dropped, so a provider can carry roles of other applications;
// a claim of any other type is an error, because it means the provider is
// misconfigured and guessing would be unsafe. Absent means no roles.
func parseRoles(raw any) ([]chartstream.Role, error) {
	var names []string
	switch r := raw.(type) {
	case nil:
		return nil, nil
	case string:
		names = strings.FieldsFunc(r, func(c rune) bool { return c == ' ' || c == ',' })
	case []any:
		for _, item := range r {
			s, ok := item.(string)
			if !ok {
				return nil, errors.New("roles array holds a non-string")
			}
			names = append(names, s)
		}
	default:
		return nil, errors.New("roles claim is neither a string nor an array")
	}
	var roles []chartstream.Role
	for _, n := range names {
		role := chartstream.Role(strings.TrimSpace(n))
		if knownRole(role) && !slices.Contains(roles, role) {
			roles = append(roles, role)
		}
	}
	return roles, nil
}

// knownRole reports whether r is one of the platform's roles. The root
// package has no such list, so it is kept here; a new Role constant must be
// added too.
func knownRole(r chartstream.Role) bool {
	switch r {
	case chartstream.RoleClinician, chartstream.RoleNurse, chartstream.RoleTenantAdmin,
		chartstream.RoleAuditor, chartstream.RoleAnalyst:
		return true
	}
	return false
}
