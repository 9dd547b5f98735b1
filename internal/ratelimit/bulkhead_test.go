package ratelimit_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/ratelimit"
)

// A tenant's burst beyond its slots waits its turn and is served, in
// arrival order, instead of being refused.
func TestBulkheadQueuesBurstsInArrivalOrder(t *testing.T) {
	t.Parallel()
	l := MustLimiter(t, ratelimit.Config{Tiers: map[chartstream.Tier]ratelimit.Limit{chartstream.TierStandard: {MaxInFlight: 1}}, QueueWait: 5 * time.Second})
	tenant := chartstream.NewTenantID()
	first, ok := l.Acquire(t.Context(), tenant, chartstream.TierStandard)
	if !ok {
		t.Fatal("first Acquire refused")
	}
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	for i := range 5 {
		wg.Go(func() {
			release, ok := l.Acquire(t.Context(), tenant, chartstream.TierStandard)
			if !ok {
				t.Errorf("waiter %d refused; want served", i)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			release()
		})
		waitQueued(t, l, tenant, i+1) // waiter i queues before i+1 comes
	}
	first()
	wg.Wait()
	for i, got := range order {
		if got != i {
			t.Fatalf("served in order %v; want arrival order", order)
		}
	}
}

// The ceiling (a share of the database pool) wins over a larger tier bound,
// and a full queue is refused at once.
func TestBulkheadCeilingAndQueueBound(t *testing.T) {
	t.Parallel()
	l := MustLimiter(t, ratelimit.Config{InFlightCeiling: 2, MaxQueued: 1, QueueWait: 5 * time.Second})
	tenant := chartstream.NewTenantID()
	for i := range 2 {
		if _, ok := l.Acquire(t.Context(), tenant, chartstream.TierEnterprise); !ok {
			t.Fatalf("Acquire %d refused", i)
		}
	}
	queued := make(chan bool)
	go func() {
		_, ok := l.Acquire(t.Context(), tenant, chartstream.TierEnterprise)
		queued <- ok
	}()
	waitQueued(t, l, tenant, 1)
	start := time.Now()
	if _, ok := l.Acquire(t.Context(), tenant, chartstream.TierEnterprise); ok {
		t.Fatal("Acquire beyond ceiling and queue accepted")
	}
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("a full queue made the caller wait %s; want an immediate refusal", waited)
	}
	select {
	case ok := <-queued:
		t.Fatalf("the queued request returned (ok=%v) while no slot was freed", ok)
	default:
	}
}

// Waiters that give up (deadline or cancelled request) never leak a slot:
// with timeouts racing handovers, the tenant ends with every slot free.
func TestBulkheadGivingUpLeaksNoSlot(t *testing.T) {
	t.Parallel()
	l := MustLimiter(t, ratelimit.Config{Tiers: map[chartstream.Tier]ratelimit.Limit{chartstream.TierStandard: {MaxInFlight: 3}}, QueueWait: time.Millisecond})
	tenant := chartstream.NewTenantID()
	var (
		wg      sync.WaitGroup
		running atomic.Int64
		peak    atomic.Int64
	)
	for range 40 {
		wg.Go(func() {
			for range 50 {
				release, ok := l.Acquire(t.Context(), tenant, chartstream.TierStandard)
				if !ok {
					continue
				}
				n := running.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(50 * time.Microsecond)
				running.Add(-1)
				release()
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > 3 {
		t.Errorf("peak %d in flight; want at most 3", p)
	}
	var releases []func()
	for i := range 3 {
		release, ok := l.Acquire(t.Context(), tenant, chartstream.TierStandard)
		if !ok {
			t.Fatalf("after the storm, slot %d is gone: a waiter leaked it", i+1)
		}
		releases = append(releases, release)
	}
	for _, r := range releases {
		r()
	}
}

// waitQueued waits until n of tenant's requests wait for a slot.
func waitQueued(t *testing.T, l *ratelimit.Limiter, tenant chartstream.TenantID, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); l.Queued(tenant) != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", l.Queued(tenant), n)
		}
	}
}
