package api

import (
	"context"
	"math"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/ratelimit"
)

// RateLimiter is the per-tenant rate limit (shared across API processes)
// and bulkhead (per process) of internal/ratelimit.
type RateLimiter interface {
	Acquire(ctx context.Context, tenant chartstream.TenantID, tier chartstream.Tier) (release func(), ok bool)
	Allow(ctx context.Context, tenant chartstream.TenantID, tier chartstream.Tier) (ratelimit.Decision, error)
}

// limit keeps one tenant's burst from starving the others: a bulkhead caps
// the tenant's requests in flight in this process at a share of the
// database pool (so it cannot hold every connection; a burst waits briefly
// for a slot), and a rate limit per tier caps its requests per second
// across processes. Over either: 429 with Retry-After.
//
// If Redis is down the rate limit lets requests through (logged): refusing
// clinicians over a limiter outage is worse than a burst, and the bulkhead
// still protects the database.
func (s *Server) limit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		cl := callerOf(c)
		ctx := c.Request().Context()
		release, ok := s.deps.Limits.Acquire(ctx, cl.Tenant, cl.Tier)
		if !ok {
			c.Response().Header().Set(echo.HeaderRetryAfter, "1")
			return chartstream.Errorf(chartstream.ERATELIMITED, "too many requests in flight for this tenant")
		}
		defer release()
		d, err := s.deps.Limits.Allow(ctx, cl.Tenant, cl.Tier)
		switch {
		case err != nil:
			s.deps.Logger.WarnContext(ctx, "rate limiter unavailable; request let through", logging.Error(err))
		case !d.Allowed:
			secs := max(1, int(math.Ceil(d.RetryAfter.Seconds())))
			c.Response().Header().Set(echo.HeaderRetryAfter, strconv.Itoa(secs))
			return chartstream.Errorf(chartstream.ERATELIMITED, "the tenant's request rate limit is exceeded")
		}
		return next(c)
	}
}
