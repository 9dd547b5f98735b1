package eventstore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/eventstore/eventstoretest"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
)

// Run with: go test -run x -bench . -benchtime 3s ./eventstore/

// benchStore returns a store whose own pool has a connection per writer,
// so the benchmark measures the database rather than waits for the pool.
func benchStore(b *testing.B, conns int) *eventstore.Store {
	b.Helper()
	pool, err := postgres.Connect(context.Background(), postgres.Config{URL: testkit.Env(b, "DATABASE_URL"),
		ApplicationName: "chartstream-bench", MaxConns: int32(max(conns, 4))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return mustStoreWith(b, pool, eventstore.Config{}, eventstoretest.Specs())
}

// benchAppends runs b.N appends of size events over writers goroutines,
// each appending to its own stream at its known version, and reports the
// events appended per second.
func benchAppends(b *testing.B, writers, size int) {
	ctx := context.Background()
	s := benchStore(b, writers)
	tenant := testkit.MustTenant(b)
	batch := make([]chartstream.NewEvent, size)
	for i := range batch {
		batch[i] = newEvent("test.happened", map[string]any{"n": i, "kind": "benchmark"})
	}
	var started atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range writers {
		wg.Go(func() {
			st, version := stream(), int64(0)
			for started.Add(1) <= int64(b.N) {
				if _, err := s.Append(ctx, tenant, st, version, batch...); err != nil {
					b.Error(err)
					return
				}
				version += int64(size)
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppend appends single events to distinct streams with a
// growing number of concurrent writers.
func BenchmarkAppend(b *testing.B) {
	for _, writers := range []int{1, 8, 32, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) { benchAppends(b, writers, 1) })
	}
}

// BenchmarkAppendBatch10 appends batches of 10 events, one writer.
func BenchmarkAppendBatch10(b *testing.B) { benchAppends(b, 1, 10) }

const readAllEvents = 20_000

// readAllFixture is one tenant with readAllEvents events, filled once per
// test binary however often the benchmark function is called.
var readAllFixture struct {
	once   sync.Once
	tenant chartstream.TenantID
}

func mustReadAllTenant(b *testing.B, s *eventstore.Store) chartstream.TenantID {
	b.Helper()
	readAllFixture.once.Do(func() {
		ctx := context.Background()
		tenant := testkit.MustTenant(b)
		batch := make([]chartstream.NewEvent, 1000)
		for i := range batch {
			batch[i] = newEvent("test.happened", map[string]any{"n": i, "kind": "benchmark"})
		}
		for range readAllEvents / len(batch) {
			if _, err := s.Append(ctx, tenant, stream(), chartstream.NoStream, batch...); err != nil {
				b.Fatal(err)
			}
		}
		eventstoretest.ReadAllTenant(b, ctx, s, tenant, readAllEvents, 1000) // wait for the horizon
		readAllFixture.tenant = tenant
	})
	if readAllFixture.tenant.IsZero() {
		b.Fatal("the ReadAll fixture failed to fill")
	}
	return readAllFixture.tenant
}

// BenchmarkReadAll reads one tenant's 20,000 events in pages of 1000.
func BenchmarkReadAll(b *testing.B) {
	ctx := context.Background()
	s := benchStore(b, 4)
	tenant := mustReadAllTenant(b, s)
	b.ResetTimer()
	for b.Loop() {
		var cursor eventstore.Cursor
		n := 0
		for {
			page, next, err := s.ReadAll(ctx, eventstore.Filter{Tenant: tenant}, cursor, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			n, cursor = n+len(page), next
		}
		if n != readAllEvents {
			b.Fatalf("read %d events, want %d", n, readAllEvents)
		}
	}
	b.ReportMetric(float64(b.N*readAllEvents)/b.Elapsed().Seconds(), "events/s")
}
