package testkit

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// MustRedis connects to the Redis in REDIS_URL; the client closes when the
// test ends. Isolate by key prefix, never FLUSHDB.
func MustRedis(tb testing.TB) *redis.Client {
	tb.Helper()
	opts, err := redis.ParseURL(Env(tb, "REDIS_URL"))
	if err != nil {
		tb.Fatalf("REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opts)
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}
