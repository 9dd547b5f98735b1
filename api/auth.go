package api

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/auth"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/tenants"
)

// TokenVerifier checks a bearer token (internal/auth.Verifier).
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (auth.Token, error)
}

// TenantDirectory finds the caller's tenant (tenants.Directory).
type TenantDirectory interface {
	Lookup(ctx context.Context, id chartstream.TenantID) (tenants.Tenant, error)
}

// RevocationList says whether a token id was revoked (internal/revocation).
type RevocationList interface {
	IsRevoked(ctx context.Context, jti string) (bool, error)
}

// caller is what authentication establishes for a request.
type caller struct {
	chartstream.Principal
	Tier chartstream.Tier
}

const callerKey = "chartstream.caller"

// callerOf returns the authenticated caller. Routes behind authenticate
// always have one; its absence is a wiring bug.
func callerOf(c echo.Context) caller {
	return c.Get(callerKey).(caller)
}

// invalidTokenChallenge answers a token that is present but refused. Every
// 401 carries a challenge (RFC 9110 §15.5.2), a revoked token or an unknown
// tenant's included.
const invalidTokenChallenge = `Bearer realm="chartstream", error="invalid_token"`

// authenticate admits requests with a valid, unrevoked bearer token of an
// existing, active tenant: 401 otherwise, 403 for a suspended tenant, 503
// when it cannot tell.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		raw, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
		if !ok || strings.TrimSpace(raw) == "" {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="chartstream"`)
			return chartstream.Errorf(chartstream.EUNAUTHORIZED, "a bearer token is required")
		}
		tok, err := s.deps.Tokens.Verify(ctx, strings.TrimSpace(raw))
		if err != nil {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, invalidTokenChallenge)
			return err
		}
		p := tok.Principal
		if p.TokenID != "" {
			revoked, err := s.deps.Revocations.IsRevoked(ctx, p.TokenID)
			if err != nil {
				return &chartstream.Error{Code: chartstream.EUNAVAILABLE, Message: "cannot check token revocation", Err: err}
			}
			if revoked {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, invalidTokenChallenge)
				return chartstream.Errorf(chartstream.EUNAUTHORIZED, "token revoked")
			}
		}
		t, err := s.tenants.lookup(ctx, p.Tenant)
		switch {
		case chartstream.ErrorCode(err) == chartstream.ENOTFOUND:
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, invalidTokenChallenge)
			return chartstream.Errorf(chartstream.EUNAUTHORIZED, "token tenant is unknown")
		case err != nil:
			return &chartstream.Error{Code: chartstream.EUNAVAILABLE, Message: "cannot check the tenant", Err: err}
		case t.Status != chartstream.TenantActive:
			return chartstream.Errorf(chartstream.EFORBIDDEN, "tenant is suspended")
		}
		c.Set(callerKey, caller{Principal: p, Tier: t.Tier})
		c.SetRequest(c.Request().WithContext(logging.WithTenant(ctx, p.Tenant.String())))
		return next(c)
	}
}

// requireRoles admits callers holding any of roles.
func requireRoles(roles ...chartstream.Role) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if !callerOf(c).HasRole(roles...) {
				return chartstream.Errorf(chartstream.EFORBIDDEN, "your role does not allow this")
			}
			return next(c)
		}
	}
}

// tenantCache remembers tenant lookups briefly: every request checks its
// tenant, and a suspension may take up to ttl to bite.
type tenantCache struct {
	dir TenantDirectory
	ttl time.Duration
	mu  sync.Mutex
	m   map[chartstream.TenantID]cachedTenant
}

type cachedTenant struct {
	t       tenants.Tenant
	expires time.Time
}

func (tc *tenantCache) lookup(ctx context.Context, id chartstream.TenantID) (tenants.Tenant, error) {
	now := time.Now()
	tc.mu.Lock()
	e, ok := tc.m[id]
	tc.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.t, nil
	}
	t, err := tc.dir.Lookup(ctx, id)
	if err != nil {
		return t, err
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if len(tc.m) > 10000 {
		clear(tc.m) // bounded: tenants are few, ids in tokens are signed
	}
	tc.m[id] = cachedTenant{t: t, expires: now.Add(tc.ttl)}
	return t, nil
}
