package workers

import (
	"context"
	"testing"
	"time"

	"github.com/chartstream/chartstream/eventstore"
)

type fakeMsg struct{ acked, nakked bool }

func (m *fakeMsg) Data() []byte { return nil }
func (m *fakeMsg) Ack() error   { m.acked = true; return nil }
func (m *fakeMsg) Nak() error   { m.nakked = true; return nil }

func deliveryAt(seq uint64) *delivery {
	return &delivery{seq: seq, cursor: eventstore.Cursor{TxID: int64(seq), Position: int64(seq)}, msg: &fakeMsg{}}
}

func nextJob(t *testing.T, s *schedule) job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	j, ok := s.next(ctx)
	if !ok {
		t.Fatal("no job")
	}
	return j
}

func noJob(t *testing.T, s *schedule) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if j, ok := s.next(ctx); ok {
		t.Fatalf("unexpected job for %s with %d items", j.tenant, len(j.items))
	}
}

func TestScheduleGivesATenantToOneWorkerAtATimeInOrder(t *testing.T) {
	s := newSchedule(2)
	for seq := uint64(1); seq <= 3; seq++ {
		s.push("a", deliveryAt(seq))
	}
	s.push("b", deliveryAt(4))
	j := nextJob(t, s)
	if j.tenant != "a" || len(j.items) != 2 || j.items[0].seq != 1 || j.items[1].seq != 2 {
		t.Fatalf("first job %s %v, want a's first two", j.tenant, j.items)
	}
	// While a is out, only b is handed out.
	k := nextJob(t, s)
	if k.tenant != "b" {
		t.Fatalf("second job for %s, want b", k.tenant)
	}
	s.push("a", deliveryAt(5))
	noJob(t, s)
	s.finish(j, outcome{done: 2, reached: j.items[1].cursor})
	j = nextJob(t, s)
	if j.tenant != "a" || len(j.items) != 2 || j.items[0].seq != 3 || j.items[1].seq != 5 {
		t.Fatalf("a's next job %v, want 3 and 5", j.items)
	}
	s.finish(j, outcome{done: 2})
	s.finish(k, outcome{done: 1})
	noJob(t, s)
	if !s.idle("a") || !s.idle("b") {
		t.Error("tenants with nothing left are not idle")
	}
}

func TestScheduleQueuesARedeliveryOnce(t *testing.T) {
	s := newSchedule(10)
	first, again := deliveryAt(1), deliveryAt(1)
	s.push("a", first)
	s.push("a", again)
	j := nextJob(t, s)
	if len(j.items) != 1 || j.items[0] != again {
		t.Fatalf("items %v, want the newer copy of the one message", j.items)
	}
}

func TestScheduleRetriesAfterAWait(t *testing.T) {
	s := newSchedule(10)
	s.push("a", deliveryAt(1))
	j := nextJob(t, s)
	s.finish(j, outcome{retryAfter: 100 * time.Millisecond})
	noJob(t, s) // not before the wait
	time.Sleep(100 * time.Millisecond)
	if j := nextJob(t, s); j.tenant != "a" || len(j.items) != 1 {
		t.Fatalf("retry job %v", j)
	}
}

func TestScheduleReleasesStuckTenantsForACatchUp(t *testing.T) {
	s := newSchedule(10)
	s.push("a", deliveryAt(1))
	s.push("a", deliveryAt(2))
	s.push("b", deliveryAt(3))
	ja := nextJob(t, s)
	jb := nextJob(t, s)
	s.finish(jb, outcome{done: 1})
	s.finish(ja, outcome{retryAfter: time.Hour})
	if got := s.releaseStuck(time.Hour, 10); len(got) != 0 {
		t.Fatalf("released %d deliveries of a tenant stuck for less than the hold", len(got))
	}
	got := s.releaseStuck(0, 10)
	if len(got) != 2 {
		t.Fatalf("released %d deliveries, want a's 2", len(got))
	}
	s.mu.Lock()
	q := s.tenants["a"]
	q.notBefore = time.Time{}
	s.makeReady("a", q)
	s.mu.Unlock()
	j := nextJob(t, s)
	if j.tenant != "a" || len(j.items) != 0 || j.target == nil || *j.target != got[1].cursor {
		t.Fatalf("after the release a's job is %+v, want a catch-up to its newest message", j)
	}
	s.finish(j, outcome{reached: *j.target})
	if !s.idle("a") {
		t.Error("a caught up is not idle")
	}
}

func TestScheduleCloseHandsBackWhatItHolds(t *testing.T) {
	s := newSchedule(10)
	s.push("a", deliveryAt(1))
	s.push("b", deliveryAt(2))
	if held := s.close(); len(held) != 2 {
		t.Fatalf("close returned %d deliveries, want 2", len(held))
	}
	noJob(t, s)
	s.push("c", deliveryAt(3)) // a late push after close does not panic
}

// A worker whose context ended gets no more jobs, even with tenants ready:
// otherwise a stopping projector's lanes would take jobs they cannot do,
// give them back, and take them again, forever.
func TestScheduleGivesNoJobAfterTheContextEnded(t *testing.T) {
	s := newSchedule(10)
	s.push("a", deliveryAt(1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if j, ok := s.next(ctx); ok {
		t.Fatalf("a job for %s after the context ended", j.tenant)
	}
}
