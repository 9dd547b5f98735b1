package ratelimit_test

import (
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/ratelimit"
	"github.com/chartstream/chartstream/internal/testkit"
)

// MustLimiter returns a Limiter on the test Redis under a key prefix of this
// test's own.
func MustLimiter(tb testing.TB, cfg ratelimit.Config) *ratelimit.Limiter {
	tb.Helper()
	rdb := testkit.MustRedis(tb)
	cfg.Prefix = "test:" + uuid.NewString() + ":rl:"
	l, err := ratelimit.New(rdb, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// allowed sends n requests of tenant back to back and counts those allowed.
func allowed(tb testing.TB, l *ratelimit.Limiter, tenant chartstream.TenantID, tier chartstream.Tier, n int) int {
	tb.Helper()
	count := 0
	for range n {
		d, err := l.Allow(testkit.Context(tb), tenant, tier)
		if err != nil {
			tb.Fatal(err)
		}
		if d.Allowed {
			count++
		}
	}
	return count
}

// wantBurst sends 30 requests back to back: a tenant whose rate (and burst)
// is rate per second gets the burst, plus what it earned while they ran
// (on a loaded machine 30 requests may take a while).
func wantBurst(tb testing.TB, l *ratelimit.Limiter, tenant chartstream.TenantID, tier chartstream.Tier, rate int, name string) {
	tb.Helper()
	start := time.Now()
	got := allowed(tb, l, tenant, tier, 30)
	earned := int(math.Ceil(float64(rate) * time.Since(start).Seconds()))
	if got < rate || got > rate+earned {
		tb.Errorf("%s: %d of 30 allowed in %s; want %d (+%d earned meanwhile)", name, got, time.Since(start), rate, earned)
	}
}

func TestOverTheLimitIsDeniedWithRetryAfter(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	l := MustLimiter(t, ratelimit.Config{Tiers: map[chartstream.Tier]ratelimit.Limit{chartstream.TierStandard: {PerSecond: 5}}})
	var tenant chartstream.TenantID
	var d ratelimit.Decision
	for attempt := 1; ; attempt++ {
		tenant = chartstream.NewTenantID()
		start := time.Now()
		if got := allowed(t, l, tenant, chartstream.TierStandard, 5); got != 5 {
			t.Fatalf("%d of the first 5 allowed; want all (burst = rate)", got)
		}
		var err error
		if d, err = l.Allow(ctx, tenant, chartstream.TierStandard); err != nil {
			t.Fatal(err)
		}
		// Six requests that took 200 ms or more earned a token while they
		// ran: a loaded machine, not the limiter; tried again.
		if !d.Allowed || time.Since(start) < 200*time.Millisecond || attempt == 5 {
			break
		}
	}
	// One request every 200ms at 5/s: the next slot is at most that far.
	if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > 200*time.Millisecond || d.Remaining != 0 || d.Limit != 5 {
		t.Fatalf("decision %+v; want denied, retry within 200ms, limit 5", d)
	}
	time.Sleep(d.RetryAfter)
	if d, err := l.Allow(ctx, tenant, chartstream.TierStandard); err != nil || !d.Allowed {
		t.Fatalf("after RetryAfter: %+v, %v; want allowed", d, err)
	}
}

func TestOneTenantsBurstDoesNotStarveAnother(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	l := MustLimiter(t, ratelimit.Config{Tiers: map[chartstream.Tier]ratelimit.Limit{chartstream.TierStandard: {PerSecond: 50}}})
	noisy, quiet := chartstream.NewTenantID(), chartstream.NewTenantID()
	var (
		wg             sync.WaitGroup
		noisyAllowed   atomic.Int64
		noisyDenied    atomic.Int64
		stop           = make(chan struct{})
		began          = time.Now()
		hammerFailures = make(chan error, 1)
	)
	for range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				d, err := l.Allow(ctx, noisy, chartstream.TierStandard)
				switch {
				case err != nil:
					select {
					case hammerFailures <- err:
					default:
					}
					return
				case d.Allowed:
					noisyAllowed.Add(1)
				default:
					noisyDenied.Add(1)
				}
			}
		})
	}
	// The quiet tenant sends 20 requests/s, well under its 50/s.
	for i := range 20 {
		d, err := l.Allow(ctx, quiet, chartstream.TierStandard)
		if err != nil || !d.Allowed {
			t.Errorf("quiet tenant request %d: %+v, %v; want allowed", i, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	elapsed := time.Since(began)
	select {
	case err := <-hammerFailures:
		t.Fatal(err)
	default:
	}
	// GCRA admits the burst plus the rate over the elapsed time, nothing more.
	if most := int64(50 + 50*elapsed.Seconds() + 2); noisyAllowed.Load() > most || noisyDenied.Load() == 0 {
		t.Fatalf("noisy tenant: %d allowed, %d denied in %v; want at most %d allowed and some denied",
			noisyAllowed.Load(), noisyDenied.Load(), elapsed, most)
	}
}

func TestTiersDiffer(t *testing.T) {
	t.Parallel()
	l := MustLimiter(t, ratelimit.Config{Tiers: map[chartstream.Tier]ratelimit.Limit{
		chartstream.TierStandard: {PerSecond: 5},
		chartstream.TierPremium:  {PerSecond: 20},
	}})
	wantBurst(t, l, chartstream.NewTenantID(), chartstream.TierStandard, 5, "standard")
	wantBurst(t, l, chartstream.NewTenantID(), chartstream.TierPremium, 20, "premium")
	// An unknown tier never gets more than standard.
	wantBurst(t, l, chartstream.NewTenantID(), chartstream.Tier("platinum"), 5, "unknown tier")
}

func TestTenantOverrideWinsOverTier(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	special := chartstream.NewTenantID()
	l := MustLimiter(t, ratelimit.Config{
		Tiers:     map[chartstream.Tier]ratelimit.Limit{chartstream.TierPremium: {PerSecond: 20, MaxInFlight: 4}},
		Tenants:   map[chartstream.TenantID]ratelimit.Limit{special: {PerSecond: 3}},
		QueueWait: -1,
	})
	wantBurst(t, l, special, chartstream.TierPremium, 3, "overridden tenant")
	d, err := l.Allow(ctx, special, chartstream.TierPremium)
	if err != nil || d.Limit != 3 {
		t.Errorf("decision %+v, %v; want limit 3", d, err)
	}
	// The override sets only the rate: the in-flight bound is still premium's.
	var releases []func()
	for {
		release, ok := l.Acquire(t.Context(), special, chartstream.TierPremium)
		if !ok {
			break
		}
		releases = append(releases, release)
	}
	if len(releases) != 4 {
		t.Errorf("%d in flight; want premium's 4", len(releases))
	}
	for _, r := range releases {
		r()
	}
}

func TestBulkhead(t *testing.T) {
	t.Parallel()
	l := MustLimiter(t, ratelimit.Config{Tiers: map[chartstream.Tier]ratelimit.Limit{chartstream.TierStandard: {MaxInFlight: 3}}, QueueWait: -1})
	tenant, other := chartstream.NewTenantID(), chartstream.NewTenantID()
	var releases []func()
	for i := range 3 {
		release, ok := l.Acquire(t.Context(), tenant, chartstream.TierStandard)
		if !ok {
			t.Fatalf("Acquire %d refused; want accepted", i+1)
		}
		releases = append(releases, release)
	}
	release, ok := l.Acquire(t.Context(), tenant, chartstream.TierStandard)
	if ok {
		t.Fatal("4th concurrent Acquire accepted; want refused")
	}
	release() // a no-op: it must not free a slot
	if _, ok := l.Acquire(t.Context(), tenant, chartstream.TierStandard); ok {
		t.Fatal("the refused Acquire's release freed a slot")
	}
	if r, ok := l.Acquire(t.Context(), other, chartstream.TierStandard); !ok {
		t.Fatal("another tenant was refused")
	} else {
		r()
	}
	releases[0]()
	releases[0]() // twice: still only one slot back
	if _, ok := l.Acquire(t.Context(), tenant, chartstream.TierStandard); !ok {
		t.Fatal("Acquire after release refused")
	}
	if _, ok := l.Acquire(t.Context(), tenant, chartstream.TierStandard); ok {
		t.Fatal("a double release freed two slots")
	}
}

func TestBulkheadUnderConcurrency(t *testing.T) {
	t.Parallel()
	l := MustLimiter(t, ratelimit.Config{Tiers: map[chartstream.Tier]ratelimit.Limit{chartstream.TierStandard: {MaxInFlight: 5}}, QueueWait: -1})
	tenant := chartstream.NewTenantID()
	var (
		wg        sync.WaitGroup
		running   atomic.Int64
		peak      atomic.Int64
		successes atomic.Int64
	)
	for range 50 {
		wg.Go(func() {
			for range 20 {
				release, ok := l.Acquire(t.Context(), tenant, chartstream.TierStandard)
				if !ok {
					continue
				}
				successes.Add(1)
				n := running.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(time.Millisecond)
				running.Add(-1)
				release()
			}
		})
	}
	wg.Wait()
	if peak.Load() > 5 || successes.Load() == 0 {
		t.Fatalf("peak %d in flight, %d successes; want at most 5 and some", peak.Load(), successes.Load())
	}
}
