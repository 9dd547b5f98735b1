package ratelimit_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/ratelimit"
	"github.com/chartstream/chartstream/internal/testkit"
)

const (
	tenantA = "7f1d3c2e-5b6a-4c8d-9e0f-1a2b3c4d5e6f"
	tenantB = "0b9e5c1a-2d3f-4e5a-8b7c-6d5e4f3a2b1c"
)

func TestParseOverrides(t *testing.T) {
	t.Parallel()
	got, err := ratelimit.ParseOverrides(" " + tenantA + "=500, " + tenantB + " = 2000 ")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := chartstream.ParseTenantID(tenantA)
	b, _ := chartstream.ParseTenantID(tenantB)
	want := map[chartstream.TenantID]ratelimit.Limit{a: {PerSecond: 500}, b: {PerSecond: 2000}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v; want %v", got, want)
	}
	if got, err := ratelimit.ParseOverrides("  "); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v, %v; want no overrides", got, err)
	}
}

func TestParseOverridesNamesEachBadEntry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
	}{
		{"hospital-a=500", []string{`override 1 ("hospital-a=500"): tenant must be a UUID`}},
		{tenantA, []string{`override 1 ("` + tenantA + `"): want "tenant-uuid=requests-per-second"`}},
		{tenantA + "=", []string{"override 1", "rate must be a positive integer"}},
		{tenantA + "=0", []string{"rate must be a positive integer"}},
		{tenantA + "=-5", []string{"rate must be a positive integer"}},
		{tenantA + "=1.5", []string{"rate must be a positive integer"}},
		{tenantA + "=5,," + tenantB + "=x", []string{"override 2", "override 3", `"` + tenantB + `=x"`}},
		{tenantA + "=5," + tenantA + "=6", []string{`override 2 ("` + tenantA + `=6"): tenant listed twice`}},
		{"00000000-0000-0000-0000-000000000000=5", []string{"tenant must be a UUID"}},
	}
	for _, tt := range tests {
		got, err := ratelimit.ParseOverrides(tt.in)
		if err == nil || got != nil {
			t.Errorf("ParseOverrides(%q) = %v, nil; want an error", tt.in, got)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParseOverrides(%q) = %q; want it to mention %q", tt.in, err, w)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := (ratelimit.Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	if err := ratelimit.DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	err := ratelimit.Config{
		Tiers:   map[chartstream.Tier]ratelimit.Limit{"gold": {PerSecond: 1}, chartstream.TierPremium: {Burst: -1}},
		Tenants: map[chartstream.TenantID]ratelimit.Limit{{}: {PerSecond: 1}},
	}.Validate()
	for _, w := range []string{`unknown tier "gold"`, "tier premium: PerSecond, Burst and MaxInFlight must not be negative", "zero tenant id"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate = %v; want it to mention %q", err, w)
		}
	}
}

func TestAllowErrors(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	l := MustLimiter(t, ratelimit.Config{})
	if _, err := l.Allow(ctx, chartstream.TenantID{}, chartstream.TierStandard); err == nil {
		t.Error("Allow accepted the zero tenant")
	}
	// Nothing listens on port 1 of loopback.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	down, err := ratelimit.New(rdb, ratelimit.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := down.Allow(ctx, chartstream.NewTenantID(), chartstream.TierStandard); chartstream.ErrorCode(err) != chartstream.EUNAVAILABLE {
		t.Fatalf("Allow with Redis down = %v; want EUNAVAILABLE", err)
	}
	// The bulkhead needs no Redis.
	if release, ok := down.Acquire(t.Context(), chartstream.NewTenantID(), chartstream.TierStandard); !ok {
		t.Fatal("Acquire refused with Redis down")
	} else {
		release()
	}
}
