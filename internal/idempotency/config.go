package idempotency

import (
	"errors"
	"fmt"
	"time"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultPrefix       = "idem:"
	DefaultTTL          = 24 * time.Hour
	DefaultInFlightTTL  = 60 * time.Second
	DefaultWait         = 10 * time.Second
	DefaultPollInterval = 50 * time.Millisecond
)

// Config configures a Store. The zero value is valid: every field has a
// default.
type Config struct {
	// Prefix starts every Redis key the Store writes. Default "idem:".
	Prefix string
	// TTL is how long a completed response is kept for replay. Default 24h,
	// the window clients are told they may retry in.
	TTL time.Duration
	// InFlightTTL bounds a claim whose request never completes or abandons
	// (its process crashed), after which a retry may run again. Default 60s.
	// It must exceed the longest a command can take: a claim that expires
	// under a still-running request lets a retry run it a second time.
	InFlightTTL time.Duration
	// Wait is how long Begin waits for an in-flight request with the same
	// key before giving up with ECONFLICT. Default 10s.
	Wait time.Duration
	// PollInterval is how often Begin looks at an in-flight key while it
	// waits. Default 50ms.
	PollInterval time.Duration
}

// setDefaults fills zero-valued fields.
func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.InFlightTTL == 0 {
		c.InFlightTTL = DefaultInFlightTTL
	}
	if c.Wait == 0 {
		c.Wait = DefaultWait
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
}

// Validate reports every problem with c at once, joined with errors.Join.
// Zero-valued fields are valid (they take their defaults), so Validate may
// be called before or after defaults are applied.
func (c Config) Validate() error {
	var errs []error
	// Redis expiries have millisecond resolution: anything positive but
	// shorter would round to an immediate expiry.
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"TTL", c.TTL}, {"InFlightTTL", c.InFlightTTL}, {"Wait", c.Wait}, {"PollInterval", c.PollInterval}} {
		if d.v < 0 || (d.v > 0 && d.v < time.Millisecond) {
			errs = append(errs, fmt.Errorf("idempotency: %s must be zero (the default) or at least 1ms, got %v", d.name, d.v))
		}
	}
	return errors.Join(errs...)
}
