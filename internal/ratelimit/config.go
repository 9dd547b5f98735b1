package ratelimit

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/chartstream/chartstream"
)

// DefaultPrefix starts the Redis keys of a Limiter whose Config has none.
const DefaultPrefix = "rl:"

// Limit sizes one tenant's share. In Config.Tiers a zero field takes the
// tier's default; in Config.Tenants a zero field takes the value of the
// tenant's tier, so an override can change the rate alone.
type Limit struct {
	// PerSecond is the sustained rate of requests allowed, across all API
	// processes.
	PerSecond int
	// Burst is how many requests may arrive at once after a quiet spell.
	// Default PerSecond.
	Burst int
	// MaxInFlight bounds the requests one tenant has running at once in one
	// process, so that a single tenant cannot hold every database
	// connection of that process.
	MaxInFlight int
}

// over returns l with its zero fields taken from base. A Burst left zero
// follows l's own rate when l sets one, since a burst sized for another rate
// would surprise whoever wrote the override.
func (l Limit) over(base Limit) Limit {
	out := base
	if l.PerSecond != 0 {
		out.PerSecond, out.Burst = l.PerSecond, l.PerSecond
	}
	if l.Burst != 0 {
		out.Burst = l.Burst
	}
	if l.MaxInFlight != 0 {
		out.MaxInFlight = l.MaxInFlight
	}
	return out
}

func (l Limit) validate(name string) []error {
	var errs []error
	if l.PerSecond < 0 || l.Burst < 0 || l.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("ratelimit: %s: PerSecond, Burst and MaxInFlight must not be negative", name))
	}
	return errs
}

// Config configures a Limiter. The zero value is valid and means
// DefaultConfig.
type Config struct {
	// Prefix starts every Redis key the Limiter writes. Default "rl:".
	// (redis_rate puts "rate:" in front of it.)
	Prefix string
	// Tiers holds the limit of each tier. A missing tier, or a zero field,
	// takes DefaultConfig's value.
	Tiers map[chartstream.Tier]Limit
	// Tenants overrides the limit of single tenants, whatever their tier;
	// see ParseOverrides. Optional.
	Tenants map[chartstream.TenantID]Limit
	// InFlightCeiling caps every tenant's MaxInFlight in this process.
	// Set it to a share of the database pool (chartstream serve uses half
	// of it), so that no tenant's requests can hold every connection
	// whatever its tier or override says. Zero means no ceiling.
	InFlightCeiling int
	// QueueWait is how long a request may wait for one of its tenant's
	// in-flight slots before it is refused. Default 1s; negative refuses
	// at once.
	QueueWait time.Duration
	// MaxQueued bounds each tenant's requests waiting for a slot in this
	// process; beyond it they are refused at once. Default 16 times the
	// tenant's MaxInFlight.
	MaxQueued int
}

// DefaultConfig returns the limits sized for 10,000 concurrent users per
// tenant: standard 200 requests/s (64 in flight per process), premium 1000/s
// (128), enterprise 5000/s (256). Bursts equal the rates.
func DefaultConfig() Config {
	return Config{
		Prefix:    DefaultPrefix,
		QueueWait: time.Second,
		Tiers: map[chartstream.Tier]Limit{
			chartstream.TierStandard:   {PerSecond: 200, Burst: 200, MaxInFlight: 64},
			chartstream.TierPremium:    {PerSecond: 1000, Burst: 1000, MaxInFlight: 128},
			chartstream.TierEnterprise: {PerSecond: 5000, Burst: 5000, MaxInFlight: 256},
		},
	}
}

// withDefaults returns a copy of c with every tier present and every zero
// field filled. The maps are copied, so the caller may reuse its own.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	out := c
	out.Tiers, out.Tenants = d.Tiers, maps.Clone(c.Tenants)
	if out.Prefix == "" {
		out.Prefix = d.Prefix
	}
	if out.QueueWait == 0 {
		out.QueueWait = d.QueueWait
	}
	for tier, l := range c.Tiers {
		out.Tiers[tier] = l.over(d.Tiers[tier])
	}
	return out
}

// Validate reports every problem with c at once, joined with errors.Join:
// unknown tiers, negative values and the zero tenant id. Zero-valued fields
// are valid (they take their defaults).
func (c Config) Validate() error {
	var errs []error
	for _, tier := range slices.Sorted(maps.Keys(c.Tiers)) {
		if !tier.Valid() {
			errs = append(errs, fmt.Errorf("ratelimit: unknown tier %q", tier))
		}
		errs = append(errs, c.Tiers[tier].validate(fmt.Sprintf("tier %s", tier))...)
	}
	if c.InFlightCeiling < 0 || c.MaxQueued < 0 {
		errs = append(errs, errors.New("ratelimit: InFlightCeiling and MaxQueued must not be negative"))
	}
	for tenant, l := range c.Tenants {
		if tenant.IsZero() {
			errs = append(errs, errors.New("ratelimit: override for the zero tenant id"))
		}
		errs = append(errs, l.validate(fmt.Sprintf("tenant %s", tenant))...)
	}
	return errors.Join(errs...)
}
