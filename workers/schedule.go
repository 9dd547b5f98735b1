package workers

import (
	"context"
	"sync"
	"time"

	"github.com/chartstream/chartstream/eventstore"
)

// The projector's schedule: deliveries queue per tenant, and workers take
// tenants, never two workers the same tenant, so a tenant's events are
// applied in order while tenants proceed independently. Nothing here
// blocks on a tenant: pushing never waits, a tenant that must wait (its
// database work failed, or a rebuild holds it) waits on a timer rather
// than on a worker, and a tenant held too long is released (see release),
// so one tenant cannot stop the others. It knows nothing of SQL or NATS.

// delivery is one message handed to the projector, with the cursors its
// headers carry.
type delivery struct {
	// seq is the message's stream sequence: a redelivery has the same.
	seq uint64
	// cursor is the event's place in the event store's gap-free order.
	cursor eventstore.Cursor
	// prev is the cursor of the tenant's previous event, when the relay
	// said (hasPrev); the zero cursor for the tenant's first event.
	prev    eventstore.Cursor
	hasPrev bool
	// msg is the message itself: acked once applied, nakked when
	// released at shutdown.
	msg ackable
	// traceParent is the relay's trace context for the event (see
	// trace.go), "" when it sent none.
	traceParent string
}

// ackable is what the schedule and the projector do with a message.
type ackable interface {
	Data() []byte
	Ack() error
	Nak() error
}

// job is one tenant's turn on a worker.
type job struct {
	tenant string
	// items are the tenant's queued deliveries, oldest first (a copy).
	items []*delivery
	// target, when set, is a cursor the tenant must be caught up to from
	// the event store, whatever the messages say (a sweep found the
	// tenant behind, or its messages were released).
	target *eventstore.Cursor
}

// tenantQueue is one tenant's deliveries and state.
type tenantQueue struct {
	items     []*delivery
	seqs      map[uint64]bool
	target    *eventstore.Cursor
	running   bool
	ready     bool // in the ready list
	notBefore time.Time
	// stuckSince is when the tenant's work first failed and has not
	// succeeded since.
	stuckSince time.Time
}

// schedule is the per-tenant queueing described above.
type schedule struct {
	// maxJob caps the deliveries handed out in one job.
	maxJob int

	mu      sync.Mutex
	tenants map[string]*tenantQueue
	ready   []string
	wake    chan struct{} // buffered: a ready tenant or a closed schedule
	closed  bool
}

func newSchedule(maxJob int) *schedule {
	return &schedule{maxJob: maxJob, tenants: make(map[string]*tenantQueue), wake: make(chan struct{}, 1)}
}

func (s *schedule) queue(tenant string) *tenantQueue {
	q := s.tenants[tenant]
	if q == nil {
		q = &tenantQueue{seqs: make(map[uint64]bool)}
		s.tenants[tenant] = q
	}
	return q
}

// push queues d for its tenant. A redelivery of a message still queued
// replaces the older copy's handle (either acks it), it is not queued twice.
func (s *schedule) push(tenant string, d *delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue(tenant)
	if q.seqs[d.seq] {
		for i, old := range q.items {
			if old.seq == d.seq {
				q.items[i] = d
			}
		}
		return
	}
	q.seqs[d.seq] = true
	q.items = append(q.items, d)
	s.makeReady(tenant, q)
}

// catchUp asks for tenant to be caught up to target from the event store.
func (s *schedule) catchUp(tenant string, target eventstore.Cursor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue(tenant)
	if q.target == nil || target.After(*q.target) {
		q.target = &target
	}
	s.makeReady(tenant, q)
}

// idle reports whether tenant has nothing queued and no worker on it.
func (s *schedule) idle(tenant string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.tenants[tenant]
	return q == nil || (!q.running && len(q.items) == 0 && q.target == nil)
}

// makeReady lists the tenant for a worker unless it has one, is listed,
// has nothing to do, or must wait. The caller holds s.mu.
func (s *schedule) makeReady(tenant string, q *tenantQueue) {
	if s.closed || q.running || q.ready || (len(q.items) == 0 && q.target == nil) || time.Now().Before(q.notBefore) {
		return
	}
	q.ready = true
	s.ready = append(s.ready, tenant)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// next waits for a ready tenant and hands it to the caller, which must call
// done. ok is false when ctx ended or the schedule closed.
func (s *schedule) next(ctx context.Context) (j job, ok bool) {
	for {
		if ctx.Err() != nil {
			return job{}, false
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return job{}, false
		}
		if len(s.ready) > 0 {
			tenant := s.ready[0]
			s.ready = s.ready[1:]
			q := s.tenants[tenant]
			q.ready, q.running = false, true
			n := min(len(q.items), s.maxJob)
			j = job{tenant: tenant, items: append([]*delivery(nil), q.items[:n]...), target: q.target}
			if len(s.ready) > 0 { // let another worker in
				select {
				case s.wake <- struct{}{}:
				default:
				}
			}
			s.mu.Unlock()
			return j, true
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return job{}, false
		case <-s.wake:
		}
	}
}

// outcome is what a worker made of a job.
type outcome struct {
	// done are the job's deliveries that are finished with (applied, or
	// applied before): the first done of the job's items.
	done int
	// reached is the cursor the tenant's read models are now at.
	reached eventstore.Cursor
	// retryAfter, when positive, makes the tenant wait that long before
	// its next turn: its work failed and will be tried again.
	retryAfter time.Duration
}

// finish records a job's outcome and lists the tenant again if it has more
// to do, now or after retryAfter.
func (s *schedule) finish(j job, o outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.tenants[j.tenant]
	q.running = false
	for _, d := range j.items[:o.done] {
		delete(q.seqs, d.seq)
	}
	// Deliveries pushed during the job stayed behind the job's items.
	q.items = q.items[o.done:]
	if q.target != nil && !q.target.After(o.reached) {
		q.target = nil
	}
	if o.retryAfter > 0 {
		if q.stuckSince.IsZero() {
			q.stuckSince = time.Now()
		}
		q.notBefore = time.Now().Add(o.retryAfter)
		time.AfterFunc(o.retryAfter, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.tenants[j.tenant] == q {
				s.makeReady(j.tenant, q)
			}
		})
		return
	}
	q.stuckSince = time.Time{}
	if len(q.items) == 0 && q.target == nil {
		delete(s.tenants, j.tenant)
		return
	}
	s.makeReady(j.tenant, q)
}

// releaseStuck gives up holding the deliveries of tenants whose work has
// failed for longer than holdFor or which hold more than holdMax: it
// returns them, and the tenant is instead marked to be caught up from the
// event store to the newest of them. Holding them would keep them from
// JetStream's other deliveries (the consumer's MaxAckPending) and so stall
// every tenant; the event store has every one of them, and catching up
// from it misses none. A tenant being worked on is left alone.
func (s *schedule) releaseStuck(holdFor time.Duration, holdMax int) []*delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	var released []*delivery
	for _, q := range s.tenants {
		stuck := !q.stuckSince.IsZero() && (time.Since(q.stuckSince) > holdFor || len(q.items) > holdMax)
		if q.running || !stuck || len(q.items) == 0 {
			continue
		}
		for _, d := range q.items {
			if q.target == nil || d.cursor.After(*q.target) {
				c := d.cursor
				q.target = &c
			}
		}
		released = append(released, q.items...)
		q.items, q.seqs = nil, make(map[uint64]bool)
	}
	return released
}

// close ends the schedule once no worker holds a job: next returns false
// from now on, and the deliveries still queued are returned, for the caller
// to hand back.
func (s *schedule) close() []*delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	close(s.wake)
	var held []*delivery
	for _, q := range s.tenants {
		held = append(held, q.items...)
	}
	s.tenants, s.ready = map[string]*tenantQueue{}, nil
	return held
}
