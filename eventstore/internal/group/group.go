// Package group is the event store's group-commit protocol, apart from the
// SQL it drives: concurrent requests queue, at most Config.Concurrency
// groups are in flight, and each group carries the oldest queued request
// and the requests of the same key (a tenant) queued after it, up to the
// group's limits. Nothing waits for a timer: a lone request goes straight
// out, on its caller's goroutine.
//
// Each request keeps its own outcome. The sender reports per group: every
// request done, or one request whose own fault failed the group (it gets
// its error and the others go again without it), or a failure worth
// sending the same group again (Retry), or a failure of them all.
package group

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// Config sizes the protocol.
type Config struct {
	// Concurrency caps the groups in flight at once. Default 2.
	Concurrency int
	// MaxRequests caps the requests in one group. Default 64.
	MaxRequests int
	// MaxWeight caps the sum of the requests' weights in one group
	// (a request heavier than that goes alone). Default 1000.
	MaxWeight int
	// Retries bounds sending a group again after a Retry verdict.
	// Default 3.
	Retries int
	// Timeout bounds one group from its first send to its last. Default 30s.
	Timeout time.Duration
}

func (c *Config) setDefaults() {
	for _, d := range []struct {
		p *int
		v int
	}{{&c.Concurrency, 2}, {&c.MaxRequests, 64}, {&c.MaxWeight, 1000}, {&c.Retries, 3}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
}

// Verdict is what became of one send of a group.
type Verdict[R any] struct {
	// Err is nil when every request succeeded; Results then holds each
	// request's result, in the group's order.
	Err     error
	Results []R
	// Failed is the index of the request whose own fault Err is, or -1.
	Failed int
	// Retry asks for the same group to be sent again (a deadlock with
	// another group, say); after Config.Retries every request gets Err.
	Retry bool
}

// SendFn sends one group of requests of one key.
type SendFn[K comparable, P, R any] func(ctx context.Context, key K, group []P) Verdict[R]

// Queue queues requests and sends them in groups.
type Queue[K comparable, P, R any] struct {
	send SendFn[K, P, R]
	cfg  Config

	mu       sync.Mutex
	queue    []*request[K, P, R] // oldest first
	flushers int
}

type request[K comparable, P, R any] struct {
	key     K
	weight  int
	payload P
	done    chan outcome[R] // buffered: a flusher never blocks on it
	taken   bool            // in a group; guarded by Queue.mu
}

type outcome[R any] struct {
	result R
	err    error
}

// New returns a queue that sends with send.
func New[K comparable, P, R any](send SendFn[K, P, R], cfg Config) *Queue[K, P, R] {
	if send == nil {
		panic("group: New without a send function")
	}
	cfg.setDefaults()
	return &Queue[K, P, R]{send: send, cfg: cfg}
}

// Len is how many requests are queued, not yet in a group.
func (q *Queue[K, P, R]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue)
}

// Submit queues a request and waits for its outcome. A caller whose ctx
// ends while its request is still queued gets ctx's error and the request
// is never sent; once it is in a group, Submit waits for the group's
// outcome (bounded by Config.Timeout), so the caller learns what happened
// rather than an ambiguous error.
//
// A caller that finds a flusher slot free sends groups itself (see lead),
// so a lone request costs no hand-over between goroutines.
func (q *Queue[K, P, R]) Submit(ctx context.Context, key K, weight int, payload P) (R, error) {
	r := &request[K, P, R]{key: key, weight: weight, payload: payload, done: make(chan outcome[R], 1)}
	q.mu.Lock()
	q.queue = append(q.queue, r)
	lead := q.flushers < q.cfg.Concurrency
	if lead {
		q.flushers++
	}
	q.mu.Unlock()

	if lead {
		if err := q.lead(ctx, r); err != nil {
			var zero R
			return zero, err
		}
	} else {
		select {
		case o := <-r.done:
			return o.result, o.err
		case <-ctx.Done():
		}
		q.mu.Lock()
		queued := !r.taken
		if queued {
			q.remove(r)
		}
		q.mu.Unlock()
		if queued {
			var zero R
			return zero, ctx.Err()
		}
	}
	o := <-r.done
	return o.result, o.err
}

// lead sends groups on the caller's goroutine, the oldest first, until r
// has gone out in one of them or in another flusher's, then hands its
// flusher slot to a background flusher if requests are still queued.
func (q *Queue[K, P, R]) lead(ctx context.Context, r *request[K, P, R]) error {
	for {
		q.mu.Lock()
		switch {
		case r.taken: // by another flusher
			q.handOver()
			q.mu.Unlock()
			return nil
		case ctx.Err() != nil:
			q.remove(r)
			q.handOver()
			q.mu.Unlock()
			return ctx.Err()
		}
		group := q.take() // not empty: r is queued
		q.mu.Unlock()
		mine := slices.Contains(group, r)
		q.sendGroup(group)
		if mine {
			q.mu.Lock()
			q.handOver()
			q.mu.Unlock()
			return nil
		}
	}
}

// flush sends groups until the queue is empty.
func (q *Queue[K, P, R]) flush() {
	for {
		q.mu.Lock()
		group := q.take()
		if len(group) == 0 {
			q.flushers--
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		q.sendGroup(group)
	}
}

// handOver gives up a flusher slot, to a background flusher if requests
// are queued. The caller holds q.mu.
func (q *Queue[K, P, R]) handOver() {
	if len(q.queue) > 0 {
		go q.flush()
		return
	}
	q.flushers--
}

// remove takes a cancelled request out of the queue. The caller holds q.mu.
func (q *Queue[K, P, R]) remove(r *request[K, P, R]) {
	q.queue = slices.DeleteFunc(q.queue, func(o *request[K, P, R]) bool { return o == r })
}

// take removes and returns the next group: the oldest queued request and
// the same key's requests queued after it, up to the group's limits. The
// caller holds q.mu.
func (q *Queue[K, P, R]) take() []*request[K, P, R] {
	if len(q.queue) == 0 {
		return nil
	}
	key := q.queue[0].key
	var group []*request[K, P, R]
	weight := 0
	rest := q.queue[:0]
	for _, r := range q.queue {
		fits := len(group) == 0 || (len(group) < q.cfg.MaxRequests && weight+r.weight <= q.cfg.MaxWeight)
		if r.key == key && fits {
			r.taken = true
			group = append(group, r)
			weight += r.weight
			continue
		}
		rest = append(rest, r)
	}
	clear(q.queue[len(rest):])
	q.queue = rest
	return group
}

// errNoResult is a sender's bug: success without a result per request.
var errNoResult = errors.New("group: the sender returned no result for a request")

// sendGroup sends a group and delivers each request's outcome, sending the
// group again without a request whose own fault failed it.
func (q *Queue[K, P, R]) sendGroup(group []*request[K, P, R]) {
	ctx, cancel := context.WithTimeout(context.Background(), q.cfg.Timeout)
	defer cancel()
	for retries := 0; len(group) > 0; {
		payloads := make([]P, len(group))
		for i, r := range group {
			payloads[i] = r.payload
		}
		v := q.send(ctx, group[0].key, payloads)
		switch {
		case v.Err == nil && len(v.Results) != len(group):
			for _, r := range group {
				r.done <- outcome[R]{err: errNoResult}
			}
			return
		case v.Err == nil:
			for i, r := range group {
				r.done <- outcome[R]{result: v.Results[i]}
			}
			return
		case v.Failed >= 0 && v.Failed < len(group):
			group[v.Failed].done <- outcome[R]{err: v.Err}
			group = slices.Delete(group, v.Failed, v.Failed+1)
		case v.Retry && retries < q.cfg.Retries:
			retries++
		default:
			for _, r := range group {
				r.done <- outcome[R]{err: v.Err}
			}
			return
		}
	}
}
