package testkit

import (
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/chartstream/chartstream/internal/tlsconfig"
)

// MustRedis connects to the Redis in REDIS_URL; the client closes when the
// test ends. Isolate by key prefix, never FLUSHDB.
func MustRedis(tb testing.TB) *redis.Client {
	tb.Helper()
	opts, err := redis.ParseURL(Env(tb, "REDIS_URL"))
	if err != nil {
		tb.Fatalf("REDIS_URL: %v", err)
	}
	// A TLS stack (CS_TLS=1) names the CA its Redis certificate is from.
	if ca := os.Getenv("REDIS_TLS_CA_FILE"); ca != "" && opts.TLSConfig != nil {
		if opts.TLSConfig.RootCAs, err = tlsconfig.CAPool(ca); err != nil {
			tb.Fatal(err)
		}
	}
	rdb := redis.NewClient(opts)
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}
