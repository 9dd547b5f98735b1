// Package ratelimit protects tenants from each other. Allow applies a
// per-tenant request rate shared by every API process (GCRA in Redis, via
// redis_rate), so one hospital's burst spends only its own budget; Acquire
// is an in-process bulkhead bounding how many of one tenant's requests run
// at once, so no tenant can hold every database connection of a process.
//
// Limits come from the tenant's tier, unless Config.Tenants overrides them.
package ratelimit

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/chartstream/chartstream"
)

// Limiter enforces per-tenant rates and in-flight bounds. It is safe for
// concurrent use.
type Limiter struct {
	gcra *redis_rate.Limiter
	cfg  Config // with defaults applied

	mu       sync.Mutex
	inFlight map[chartstream.TenantID]*bulkhead // tenants with requests running or waiting
}

// New returns a Limiter. A nil rdb is a wiring bug and panics; an invalid
// cfg is returned as an error (see Config.Validate).
func New(rdb *redis.Client, cfg Config) (*Limiter, error) {
	if rdb == nil {
		panic("ratelimit: nil redis client")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Limiter{
		gcra:     redis_rate.NewLimiter(rdb),
		cfg:      cfg.withDefaults(),
		inFlight: make(map[chartstream.TenantID]*bulkhead),
	}, nil
}

// Decision is the outcome of Allow, with what the API needs for the
// RateLimit and Retry-After headers.
type Decision struct {
	// Allowed says whether the request may proceed.
	Allowed bool
	// RetryAfter is how long until a request would be allowed; zero when
	// Allowed. It is often well under a second: round it up for the
	// Retry-After header, which counts whole seconds.
	RetryAfter time.Duration
	// Remaining is how many more requests could be allowed right now.
	Remaining int
	// Limit is the tenant's rate, in requests per second.
	Limit int
}

// Allow counts one request of tenant against its rate and reports whether
// it may proceed. The budget is shared by every process using the same
// Redis and Prefix. An unknown tier gets the standard tier's limit, the
// smallest, so a bad tier value never grants more.
//
// Errors: a plain error for the zero tenant id (a wiring bug); EUNAVAILABLE,
// wrapping the cause, when Redis fails. A denial is not an error: the
// caller turns Allowed=false into ERATELIMITED.
func (l *Limiter) Allow(ctx context.Context, tenant chartstream.TenantID, tier chartstream.Tier) (Decision, error) {
	if tenant.IsZero() {
		return Decision{}, errors.New("ratelimit: zero tenant id")
	}
	lim := l.limitFor(tenant, tier)
	res, err := l.gcra.Allow(ctx, l.cfg.Prefix+tenant.String(), redis_rate.Limit{
		Rate: lim.PerSecond, Burst: lim.Burst, Period: time.Second,
	})
	if err != nil {
		return Decision{}, &chartstream.Error{Code: chartstream.EUNAVAILABLE, Message: "rate limits are unavailable", Err: err}
	}
	d := Decision{Allowed: res.Allowed > 0, Remaining: res.Remaining, Limit: lim.PerSecond}
	if !d.Allowed {
		d.RetryAfter = res.RetryAfter
	}
	return d, nil
}

// limitFor returns tenant's effective limit: its override over its tier's.
func (l *Limiter) limitFor(tenant chartstream.TenantID, tier chartstream.Tier) Limit {
	base, ok := l.cfg.Tiers[tier]
	if !ok {
		base = l.cfg.Tiers[chartstream.TierStandard]
	}
	if o, ok := l.cfg.Tenants[tenant]; ok {
		return o.over(base)
	}
	return base
}
