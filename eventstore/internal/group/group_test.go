package group

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeSender records every group it is sent and answers with verdict.
// While block is open, the first send waits on it, so that requests queue
// behind it deterministically.
type fakeSender struct {
	mu      sync.Mutex
	groups  [][]string
	block   chan struct{}
	started chan struct{}
	verdict func(group []string) Verdict[string]
}

func (f *fakeSender) send(ctx context.Context, key string, group []string) Verdict[string] {
	f.mu.Lock()
	first := len(f.groups) == 0
	f.groups = append(f.groups, slices.Clone(group))
	f.mu.Unlock()
	if first && f.block != nil {
		close(f.started)
		<-f.block
	}
	if f.verdict != nil {
		return f.verdict(group)
	}
	results := make([]string, len(group))
	for i, p := range group {
		results[i] = "done:" + p
	}
	return Verdict[string]{Results: results, Failed: -1}
}

func (f *fakeSender) sent() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.groups)
}

// queueBehind submits "first" so that it blocks in the sender, then the
// given requests, which queue behind it; it returns a function that
// releases the sender and waits for every outcome.
func queueBehind(t *testing.T, f *fakeSender, q *Queue[string, string, string], reqs ...[2]string) func() map[string]outcome[string] {
	t.Helper()
	f.block, f.started = make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	outcomes := map[string]outcome[string]{}
	var wg sync.WaitGroup
	submit := func(key, payload string) {
		defer wg.Done()
		r, err := q.Submit(context.Background(), key, 1, payload)
		mu.Lock()
		outcomes[payload] = outcome[string]{r, err}
		mu.Unlock()
	}
	wg.Add(1)
	go submit("t0", "first")
	<-f.started
	for _, r := range reqs {
		wg.Add(1)
		go submit(r[0], r[1])
	}
	waitQueued(t, q, len(reqs))
	return func() map[string]outcome[string] {
		close(f.block)
		wg.Wait()
		return outcomes
	}
}

func waitQueued(t *testing.T, q *Queue[string, string, string], n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		q.mu.Lock()
		queued := len(q.queue)
		q.mu.Unlock()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestALoneRequestGoesOutAtOnceAlone(t *testing.T) {
	f := &fakeSender{}
	q := New(f.send, Config{})
	got, err := q.Submit(context.Background(), "t", 1, "a")
	if err != nil || got != "done:a" {
		t.Fatalf("Submit = %q, %v", got, err)
	}
	if s := f.sent(); len(s) != 1 || len(s[0]) != 1 {
		t.Errorf("sent %v, want one group of one", s)
	}
}

func TestQueuedRequestsGoOutGroupedByKeyOldestFirst(t *testing.T) {
	f := &fakeSender{}
	q := New(f.send, Config{Concurrency: 1, MaxRequests: 2})
	wait := queueBehind(t, f, q, [2]string{"t1", "a1"})
	waitQueued(t, q, 1)
	// Queue the rest in a known order behind a1.
	for i, r := range [][2]string{{"t2", "b1"}, {"t1", "a2"}, {"t1", "a3"}} {
		go func() { _, _ = q.Submit(context.Background(), r[0], 1, r[1]) }()
		waitQueued(t, q, i+2)
	}
	outcomes := wait()
	if o := outcomes["a1"]; o.err != nil || o.result != "done:a1" {
		t.Errorf("a1: %+v", o)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(f.sent()) < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	want := [][]string{{"first"}, {"a1", "a2"}, {"b1"}, {"a3"}}
	if got := f.sent(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("groups %v, want %v", got, want)
	}
}

func TestARequestsOwnFailureReachesOnlyIt(t *testing.T) {
	f := &fakeSender{}
	q := New(f.send, Config{Concurrency: 1})
	bad := errors.New("stale version")
	f.verdict = func(group []string) Verdict[string] {
		if i := slices.Index(group, "b"); i >= 0 {
			return Verdict[string]{Err: bad, Failed: i}
		}
		results := make([]string, len(group))
		for i, p := range group {
			results[i] = "done:" + p
		}
		return Verdict[string]{Results: results, Failed: -1}
	}
	outcomes := queueBehind(t, f, q, [2]string{"t", "a"}, [2]string{"t", "b"}, [2]string{"t", "c"})()
	if !errors.Is(outcomes["b"].err, bad) {
		t.Errorf("b: %v, want its own error", outcomes["b"].err)
	}
	for _, p := range []string{"a", "c"} {
		if o := outcomes[p]; o.err != nil || o.result != "done:"+p {
			t.Errorf("%s: %+v, want done", p, o)
		}
	}
}

func TestARetryVerdictSendsTheGroupAgainThenGivesUp(t *testing.T) {
	f := &fakeSender{}
	deadlock := errors.New("deadlock")
	f.verdict = func([]string) Verdict[string] { return Verdict[string]{Err: deadlock, Failed: -1, Retry: true} }
	q := New(f.send, Config{Retries: 2})
	if _, err := q.Submit(context.Background(), "t", 1, "a"); !errors.Is(err, deadlock) {
		t.Fatalf("Submit: %v", err)
	}
	if n := len(f.sent()); n != 3 {
		t.Errorf("sent %d times, want 1 + 2 retries", n)
	}
}

func TestACancelledQueuedRequestIsNeverSent(t *testing.T) {
	f := &fakeSender{}
	q := New(f.send, Config{Concurrency: 1})
	f.block, f.started = make(chan struct{}), make(chan struct{})
	go func() { _, _ = q.Submit(context.Background(), "t", 1, "first") }()
	<-f.started
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := q.Submit(ctx, "t", 1, "cancelled"); errc <- err }()
	waitQueued(t, q, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled request: %v", err)
	}
	close(f.block)
	time.Sleep(50 * time.Millisecond)
	for _, g := range f.sent() {
		if slices.Contains(g, "cancelled") {
			t.Errorf("a cancelled request was sent: %v", g)
		}
	}
}

func TestARequestInFlightWaitsForItsOutcomeDespiteCancel(t *testing.T) {
	f := &fakeSender{block: make(chan struct{}), started: make(chan struct{})}
	q := New(f.send, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	type res struct {
		r   string
		err error
	}
	done := make(chan res, 1)
	go func() { r, err := q.Submit(ctx, "t", 1, "a"); done <- res{r, err} }()
	<-f.started
	cancel()
	close(f.block)
	if got := <-done; got.err != nil || got.r != "done:a" {
		t.Errorf("Submit = %+v, want its real outcome", got)
	}
}
