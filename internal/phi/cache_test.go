package phi

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

// fakeClock is safe for the cache to read while a test advances it.
type fakeClock struct{ nanos atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.nanos.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.nanos.Add(int64(d)) }

func MustDEKCache(tb testing.TB, cfg DEKCacheConfig) *DEKCache {
	tb.Helper()
	c, err := NewDEKCache(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// countingLoader returns a fresh Cipher per call and counts the calls, so a
// test can tell a cache hit (same Cipher, no call) from a miss.
type countingLoader struct {
	tb    testing.TB
	calls atomic.Int64
}

func (l *countingLoader) load() (*Cipher, error) {
	l.calls.Add(1)
	return NewCipher(mustDataKey(l.tb))
}

func mustLoad(tb testing.TB, c *DEKCache, tenant chartstream.TenantID, subject uuid.UUID, l *countingLoader) *Cipher {
	tb.Helper()
	ciph, err := c.Load(tenant, subject, l.load)
	if err != nil {
		tb.Fatal(err)
	}
	return ciph
}

func TestDEKCacheHitAndKeying(t *testing.T) {
	t.Parallel()
	c := MustDEKCache(t, DEKCacheConfig{})
	l := &countingLoader{tb: t}
	tenant, subject := chartstream.NewTenantID(), uuid.New()
	first := mustLoad(t, c, tenant, subject, l)
	if again := mustLoad(t, c, tenant, subject, l); again != first || l.calls.Load() != 1 {
		t.Fatalf("second load: same cipher %v, %d loads; want a hit", again == first, l.calls.Load())
	}
	// The same subject id in another tenant is another key.
	if other := mustLoad(t, c, chartstream.NewTenantID(), subject, l); other == first || l.calls.Load() != 2 {
		t.Fatal("another tenant's subject shared the cached key")
	}
}

func TestDEKCacheTTL(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{}
	c := MustDEKCache(t, DEKCacheConfig{TTL: time.Minute, Now: clock.Now})
	l := &countingLoader{tb: t}
	tenant, subject := chartstream.NewTenantID(), uuid.New()
	mustLoad(t, c, tenant, subject, l)
	clock.Advance(59 * time.Second)
	mustLoad(t, c, tenant, subject, l) // a hit does not extend the TTL
	if l.calls.Load() != 1 {
		t.Fatalf("loads before TTL = %d; want 1", l.calls.Load())
	}
	clock.Advance(time.Second)
	mustLoad(t, c, tenant, subject, l)
	if l.calls.Load() != 2 {
		t.Fatalf("loads after TTL = %d; want 2", l.calls.Load())
	}
}

func TestDEKCacheEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	c := MustDEKCache(t, DEKCacheConfig{MaxEntries: 2})
	l := &countingLoader{tb: t}
	tenant := chartstream.NewTenantID()
	a, b, third := uuid.New(), uuid.New(), uuid.New()
	mustLoad(t, c, tenant, a, l)
	mustLoad(t, c, tenant, b, l)
	mustLoad(t, c, tenant, a, l)     // a is now more recent than b
	mustLoad(t, c, tenant, third, l) // evicts b
	if c.Len() != 2 {
		t.Fatalf("Len = %d; want 2", c.Len())
	}
	before := l.calls.Load()
	mustLoad(t, c, tenant, a, l)
	if l.calls.Load() != before {
		t.Fatal("recently used key was evicted")
	}
	mustLoad(t, c, tenant, b, l)
	if l.calls.Load() != before+1 {
		t.Fatal("least recently used key was not evicted")
	}
}

func TestDEKCacheForget(t *testing.T) {
	t.Parallel()
	c := MustDEKCache(t, DEKCacheConfig{})
	l := &countingLoader{tb: t}
	tenant, subject, other := chartstream.NewTenantID(), uuid.New(), uuid.New()
	mustLoad(t, c, tenant, subject, l)
	mustLoad(t, c, tenant, other, l)
	c.Forget(tenant, subject)
	if c.Len() != 1 {
		t.Fatalf("Len after Forget = %d; want 1", c.Len())
	}
	mustLoad(t, c, tenant, other, l)
	if l.calls.Load() != 2 {
		t.Fatal("Forget dropped another subject's key")
	}
	mustLoad(t, c, tenant, subject, l)
	if l.calls.Load() != 3 {
		t.Fatal("forgotten key was still cached")
	}
}

// A key unwrapped just before a crypto-shred must not be cached after it.
func TestDEKCacheForgetDuringLoad(t *testing.T) {
	t.Parallel()
	c := MustDEKCache(t, DEKCacheConfig{})
	tenant, subject := chartstream.NewTenantID(), uuid.New()
	ciph, err := c.Load(tenant, subject, func() (*Cipher, error) {
		c.Forget(tenant, subject) // the shred commits while the unwrap is in flight
		return NewCipher(mustDataKey(t))
	})
	if err != nil || ciph == nil {
		t.Fatalf("Load = %v, %v; want the loaded cipher", ciph, err)
	}
	if c.Len() != 0 {
		t.Fatal("key loaded across a Forget was cached")
	}
}

func TestDEKCacheLoadError(t *testing.T) {
	t.Parallel()
	c := MustDEKCache(t, DEKCacheConfig{})
	tenant, subject := chartstream.NewTenantID(), uuid.New()
	_, err := c.Load(tenant, subject, func() (*Cipher, error) { return nil, ErrKeyDestroyed })
	if !errors.Is(err, ErrKeyDestroyed) {
		t.Fatalf("err = %v; want ErrKeyDestroyed", err)
	}
	if _, err := c.Load(tenant, subject, func() (*Cipher, error) { return nil, nil }); err == nil {
		t.Fatal("nil cipher without error was accepted")
	}
	if c.Len() != 0 {
		t.Fatal("a failed load was cached")
	}
}

func TestDEKCacheConfigValidate(t *testing.T) {
	t.Parallel()
	if _, err := NewDEKCache(DEKCacheConfig{MaxEntries: -1, TTL: -time.Second}); err == nil {
		t.Fatal("negative config accepted")
	}
}

func TestDEKCacheConcurrent(t *testing.T) {
	t.Parallel()
	c := MustDEKCache(t, DEKCacheConfig{MaxEntries: 8})
	l := &countingLoader{tb: t}
	tenant := chartstream.NewTenantID()
	subjects := make([]uuid.UUID, 16)
	for i := range subjects {
		subjects[i] = uuid.New()
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				s := subjects[(g+i)%len(subjects)]
				if i%50 == 0 {
					c.Forget(tenant, s)
					continue
				}
				ciph, err := c.Load(tenant, s, l.load)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := ciph.Open(ciph.Seal([]byte("x"), nil), nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := c.Len(); n > 8 {
		t.Fatalf("Len = %d; want at most MaxEntries", n)
	}
}
