package idempotency_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/idempotency"
	"github.com/chartstream/chartstream/internal/testkit"
)

var fp = []byte("POST /patients sha256-of-body")

// mustOwn fails the test unless Begin hands k to the caller.
func mustOwn(tb testing.TB, s *idempotency.Store, k idempotency.Key, fp []byte) {
	tb.Helper()
	resp, err := s.Begin(testkit.Context(tb), k, fp)
	if err != nil || resp != nil {
		tb.Fatalf("Begin = %+v, %v; want ownership", resp, err)
	}
}

// mustComplete owns k with fp and completes it with a fresh response, which
// it returns.
func mustComplete(tb testing.TB, s *idempotency.Store, k idempotency.Key) idempotency.Response {
	tb.Helper()
	mustOwn(tb, s, k, fp)
	r := created(uuid.NewString())
	if err := s.Complete(testkit.Context(tb), k, fp, r); err != nil {
		tb.Fatal(err)
	}
	return r
}

// mustReplay fails the test unless Begin replays want.
func mustReplay(tb testing.TB, s *idempotency.Store, k idempotency.Key, want idempotency.Response) {
	tb.Helper()
	resp, err := s.Begin(testkit.Context(tb), k, fp)
	if err != nil || resp == nil || !reflect.DeepEqual(*resp, want) {
		tb.Fatalf("Begin = %+v, %v; want replay of %+v", resp, err, want)
	}
}

func TestFirstOwnsAndRetryReplays(t *testing.T) {
	t.Parallel()
	s, _ := MustStore(t, idempotency.Config{})
	k := NewKey()
	want := mustComplete(t, s, k)
	mustReplay(t, s, k, want)
	mustReplay(t, s, k, want)
}

func TestConcurrentDuplicatesHaveOneOwner(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	s, _ := MustStore(t, idempotency.Config{PollInterval: 5 * time.Millisecond})
	k, want := NewKey(), created("p-2")
	const n = 20
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		owners  = make(chan int, n)
		replays = make(chan *idempotency.Response, n)
		errs    = make(chan error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			resp, err := s.Begin(ctx, k, fp)
			switch {
			case err != nil:
				errs <- err
			case resp == nil:
				owners <- i
				// Hold the key a while so the others really overlap.
				time.Sleep(100 * time.Millisecond)
				errs <- s.Complete(ctx, k, fp, want)
			default:
				replays <- resp
			}
		})
	}
	close(start)
	wg.Wait()
	close(owners)
	close(replays)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(owners) != 1 {
		t.Fatalf("%d owners; want exactly 1", len(owners))
	}
	if len(replays) != n-1 {
		t.Fatalf("%d replays; want %d", len(replays), n-1)
	}
	for r := range replays {
		if !reflect.DeepEqual(*r, want) {
			t.Fatalf("replay %+v; want %+v", *r, want)
		}
	}
}

func TestInFlightRetryGivesUpWithConflict(t *testing.T) {
	t.Parallel()
	const wait = 300 * time.Millisecond
	s, _ := MustStore(t, idempotency.Config{Wait: wait, PollInterval: 20 * time.Millisecond})
	k := NewKey()
	mustOwn(t, s, k, fp)
	began := time.Now()
	resp, err := s.Begin(testkit.Context(t), k, fp)
	if chartstream.ErrorCode(err) != chartstream.ECONFLICT || resp != nil {
		t.Fatalf("Begin = %+v, %v; want ECONFLICT", resp, err)
	}
	if elapsed := time.Since(began); elapsed < wait {
		t.Fatalf("gave up after %v; want at least %v", elapsed, wait)
	}
	if got := chartstream.ErrorMessage(err); got != "a request with this idempotency key is still in progress" {
		t.Fatalf("message %q", got)
	}
}

func TestInFlightRetryReplaysOnceCompleted(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	s, _ := MustStore(t, idempotency.Config{PollInterval: 10 * time.Millisecond})
	k, want := NewKey(), created("p-3")
	mustOwn(t, s, k, fp)
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = s.Complete(ctx, k, fp, want)
	}()
	mustReplay(t, s, k, want)
}

func TestCancelledWaitIsConflict(t *testing.T) {
	t.Parallel()
	s, _ := MustStore(t, idempotency.Config{})
	k := NewKey()
	mustOwn(t, s, k, fp)
	ctx, cancel := context.WithTimeout(testkit.Context(t), 100*time.Millisecond)
	defer cancel()
	_, err := s.Begin(ctx, k, fp)
	if chartstream.ErrorCode(err) != chartstream.ECONFLICT || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Begin = %v; want ECONFLICT wrapping the deadline", err)
	}
}

func TestDifferentFingerprintIsUnprocessable(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	s, _ := MustStore(t, idempotency.Config{})
	k, other := NewKey(), []byte("POST /patients another body")
	mustOwn(t, s, k, fp)
	for _, when := range []string{"in flight", "completed"} {
		_, err := s.Begin(ctx, k, other)
		if chartstream.ErrorCode(err) != chartstream.EUNPROCESSABLE {
			t.Fatalf("%s: Begin = %v; want EUNPROCESSABLE", when, err)
		}
		if err := s.Complete(ctx, k, fp, created("p-4")); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAbandonLetsARetryOwn(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	s, _ := MustStore(t, idempotency.Config{PollInterval: 10 * time.Millisecond})
	k := NewKey()
	mustOwn(t, s, k, fp)
	if err := s.Abandon(ctx, k); err != nil {
		t.Fatal(err)
	}
	mustOwn(t, s, k, fp)

	// A retry already waiting takes over when the owner abandons.
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = s.Abandon(ctx, k)
	}()
	mustOwn(t, s, k, fp)

	// Abandon never discards a completed response.
	want := created("p-5")
	if err := s.Complete(ctx, k, fp, want); err != nil {
		t.Fatal(err)
	}
	if err := s.Abandon(ctx, k); err != nil {
		t.Fatal(err)
	}
	mustReplay(t, s, k, want)
}

func TestKeysAreScopedToTenantAndSubject(t *testing.T) {
	t.Parallel()
	s, _ := MustStore(t, idempotency.Config{Wait: 50 * time.Millisecond})
	k := NewKey()
	mustComplete(t, s, k)
	otherTenant, otherSubject := k, k
	otherTenant.Tenant = chartstream.NewTenantID()
	otherSubject.Subject = "someone-else"
	mustOwn(t, s, otherTenant, []byte("a different request"))
	mustOwn(t, s, otherSubject, []byte("a different request"))
}

func TestCompletedKeyExpires(t *testing.T) {
	t.Parallel()
	s, _ := MustStore(t, idempotency.Config{TTL: 200 * time.Millisecond})
	k := NewKey()
	mustComplete(t, s, k)
	awaitOwnership(t, s, k, fp)
}

func TestCrashedClaimExpires(t *testing.T) {
	t.Parallel()
	s, _ := MustStore(t, idempotency.Config{InFlightTTL: 200 * time.Millisecond, Wait: 20 * time.Millisecond})
	k := NewKey()
	mustOwn(t, s, k, fp)
	awaitOwnership(t, s, k, fp)
}

// awaitOwnership polls Begin until it hands k to the caller: until the
// earlier request's claim or response expired.
func awaitOwnership(tb testing.TB, s *idempotency.Store, k idempotency.Key, fp []byte) {
	tb.Helper()
	ctx := testkit.Context(tb)
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := s.Begin(ctx, k, fp)
		if code := chartstream.ErrorCode(err); code != "" && code != chartstream.ECONFLICT && code != chartstream.EUNPROCESSABLE {
			tb.Fatal(err)
		}
		if err == nil && resp == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatal("key never expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCompleteAfterAnotherRequestClaimedIsConflict(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	s, _ := MustStore(t, idempotency.Config{InFlightTTL: 100 * time.Millisecond, Wait: 20 * time.Millisecond})
	k, other := NewKey(), []byte("another request")
	mustOwn(t, s, k, fp)
	awaitOwnership(t, s, k, other)
	if err := s.Complete(ctx, k, fp, created("p-8")); chartstream.ErrorCode(err) != chartstream.ECONFLICT {
		t.Fatalf("Complete = %v; want ECONFLICT", err)
	}
}
