package ratelimit

import (
	"context"
	"sync"
	"time"

	"github.com/chartstream/chartstream"
)

// bulkhead is one tenant's in-flight slots in this process: running
// requests, and those waiting for a slot in arrival order.
type bulkhead struct {
	running int
	waiting []chan struct{}
}

// Acquire takes one of tenant's in-flight slots in this process, waiting
// for one, in arrival order, for up to Config.QueueWait (and no longer than
// ctx). It returns ok=false when none came free in time or when
// Config.MaxQueued of the tenant's requests are waiting already; otherwise
// release gives the slot back. release may be called more than once (later
// calls do nothing) and is a no-op when ok is false, so `defer release()` is
// always safe. It needs no Redis, so it keeps protecting the process when
// Redis is down.
//
// Waiting instead of refusing at once serves a tenant's bursts that the
// database can absorb (a request holds its slot for milliseconds), while
// the slots themselves stay a share of the pool.
func (l *Limiter) Acquire(ctx context.Context, tenant chartstream.TenantID, tier chartstream.Tier) (release func(), ok bool) {
	lim := l.limitFor(tenant, tier)
	l.mu.Lock()
	b := l.inFlight[tenant]
	if b == nil {
		b = &bulkhead{}
		l.inFlight[tenant] = b
	}
	if b.running < l.maxInFlight(lim) {
		b.running++
		l.mu.Unlock()
		return l.releaser(tenant), true
	}
	if len(b.waiting) >= l.maxQueued(lim) || l.cfg.QueueWait < 0 {
		l.mu.Unlock()
		return func() {}, false
	}
	turn := make(chan struct{})
	b.waiting = append(b.waiting, turn)
	l.mu.Unlock()

	timer := time.NewTimer(l.cfg.QueueWait)
	defer timer.Stop()
	select {
	case <-turn:
		return l.releaser(tenant), true
	case <-timer.C:
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-turn:
		// The slot was handed over as we gave up: pass it on.
		l.releaseLocked(tenant)
	default:
		b.waiting = removeTurn(b.waiting, turn)
	}
	return func() {}, false
}

func (l *Limiter) releaser(tenant chartstream.TenantID) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.releaseLocked(tenant)
		})
	}
}

// releaseLocked hands a finished request's slot to the first waiter, or
// frees it. Deleting idle tenants keeps the map as small as the set of busy
// tenants.
func (l *Limiter) releaseLocked(tenant chartstream.TenantID) {
	b := l.inFlight[tenant]
	if len(b.waiting) > 0 {
		close(b.waiting[0])
		b.waiting = b.waiting[1:]
		return
	}
	if b.running--; b.running == 0 {
		delete(l.inFlight, tenant)
	}
}

func removeTurn(waiting []chan struct{}, turn chan struct{}) []chan struct{} {
	for i, w := range waiting {
		if w == turn {
			return append(waiting[:i], waiting[i+1:]...)
		}
	}
	return waiting
}

// maxInFlight is lim's in-flight bound under the process's ceiling.
func (l *Limiter) maxInFlight(lim Limit) int {
	if c := l.cfg.InFlightCeiling; c > 0 && c < lim.MaxInFlight {
		return c
	}
	return lim.MaxInFlight
}

func (l *Limiter) maxQueued(lim Limit) int {
	if l.cfg.MaxQueued > 0 {
		return l.cfg.MaxQueued
	}
	return 16 * lim.MaxInFlight
}
