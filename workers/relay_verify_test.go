package workers_test

import (
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/eventstore/eventstoretest"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/workers"
)

// Relay verification against the real relay, PostgreSQL and NATS. Each
// test damages its own stream in one way and expects exactly that damage
// reported, with the events' ids.

// relayPublished runs the relay until it has published the test tenant's
// events (streams × perStream) and stops it. It returns the events in
// cursor order and each one's stream sequence.
func relayPublished(t *testing.T, e *relayEnv, streamCount, perStream int) ([]chartstream.Event, map[uuid.UUID]uint64) {
	t.Helper()
	var mu sync.Mutex
	seqs := map[uuid.UUID]uint64{}
	stop := e.startRelay(func(p workers.PublishedParams) {
		if p.Event.Tenant == e.tenant {
			mu.Lock()
			defer mu.Unlock()
			seqs[p.Event.ID] = p.Sequence
		}
	}, nil)
	e.appendEvents(streams(streamCount), perStream)
	want := streamCount * perStream
	waitUntil(t, 20*time.Second, "the relay publishes the tenant's events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seqs) == want
	})
	stop()
	return e.stored(), seqs
}

// stored returns the test tenant's events in cursor order.
func (e *relayEnv) stored() []chartstream.Event {
	e.t.Helper()
	return eventstoretest.ReadCommitted(e.t, testkit.Context(e.t), e.writer, e.tenant)
}

// verify checks the tenant's events in the env's stream, as the app role.
func (e *relayEnv) verify(progress eventstore.ProgressFn) workers.RelayReport {
	e.t.Helper()
	// On a cluster that has just lost or regained a node, a request may
	// fail while it elects: tried again for a while.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r, err := workers.VerifyRelay(testkit.Context(e.t), workers.RelayVerifyDeps{Events: e.writer, JetStream: e.js},
			workers.RelayVerifyOptions{Stream: e.cfg.Stream, SubjectPrefix: e.cfg.SubjectPrefix, Tenant: e.tenant, Progress: progress})
		if err == nil {
			return r
		}
		if time.Now().After(deadline) {
			e.t.Fatal(err)
		}
	}
}

// publish puts msg on the stream as it is (its own Nats-Msg-Id).
func (e *relayEnv) publish(msg *nats.Msg) *jetstream.PubAck {
	e.t.Helper()
	ack, err := e.js.PublishMsg(testkit.Context(e.t), msg)
	if err != nil {
		e.t.Fatal(err)
	}
	return ack
}

// publishEvents creates the env's stream by hand and publishes events in
// the given order, as the relay would encode them.
func (e *relayEnv) publishEvents(events ...chartstream.Event) jetstream.Stream {
	e.t.Helper()
	stream, err := e.js.CreateOrUpdateStream(testkit.Context(e.t), jetstream.StreamConfig{
		Name: e.cfg.Stream, Subjects: []string{e.cfg.SubjectPrefix + ".>"}, Storage: jetstream.FileStorage, MaxBytes: 64 << 20,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ev := range events {
		e.publish(mustEncode(e.t, e.cfg.SubjectPrefix, ev))
	}
	return stream
}

func mustEncode(t *testing.T, prefix string, ev chartstream.Event) *nats.Msg {
	t.Helper()
	msg, err := workers.EncodeMessage(prefix, ev)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// cleanReport is the report of a check that found the events, all in the
// stream once each and in order.
func cleanReport(e *relayEnv, events []chartstream.Event) workers.RelayReport {
	n := int64(len(events))
	return workers.RelayReport{Stream: e.cfg.Stream, Head: eventstore.CursorOf(events[len(events)-1]), StoreEvents: n, StreamMessages: n}
}

func found(ids ...uuid.UUID) workers.RelayDiscrepancy {
	return workers.RelayDiscrepancy{Count: int64(len(ids)), Examples: ids}
}

func assertReport(t *testing.T, got, want workers.RelayReport) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("report\n got %+v\nwant %+v", got, want)
	}
	if wantOK := want.Missing.Count+want.Duplicated.Count+want.OutOfOrder.Count+want.Extra.Count == 0; got.OK() != wantOK {
		t.Errorf("OK() = %v, want %v", got.OK(), wantOK)
	}
}

func TestRelayVerifyAcceptsTheRelaysWork(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	// More than a page of store events and of buffered stream messages.
	events, _ := relayPublished(t, e, 3, 400)
	var done, total int64
	got := e.verify(func(d, tot int64) { done, total = d, tot })
	assertReport(t, got, cleanReport(e, events))
	if done != 2400 || total != 2400 {
		t.Errorf("last progress %d of %d, want 2400 of 2400 (each message read, each event looked up)", done, total)
	}
}

func TestRelayVerifyFindsAMissingEvent(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	events, seqs := relayPublished(t, e, 2, 3)
	stream, err := e.js.Stream(testkit.Context(t), e.cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.DeleteMsg(testkit.Context(t), seqs[events[2].ID]); err != nil {
		t.Fatal(err)
	}
	want := cleanReport(e, events)
	want.StreamMessages--
	want.Missing = found(events[2].ID)
	assertReport(t, e.verify(nil), want)
}

func TestRelayVerifyFindsADuplicate(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	e.cfg.DuplicateWindow = time.Second
	events, _ := relayPublished(t, e, 2, 3)
	// JetStream drops the copy until the event id leaves its duplicate
	// window.
	again := mustEncode(t, e.cfg.SubjectPrefix, events[1])
	waitUntil(t, 10*time.Second, "the copy is stored past the duplicate window", func() bool { return !e.publish(again).Duplicate })
	want := cleanReport(e, events)
	want.StreamMessages++
	want.Duplicated = found(events[1].ID)
	assertReport(t, e.verify(nil), want)
}

func TestRelayVerifyFindsExtraMessages(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	events, _ := relayPublished(t, e, 2, 3)
	forged := events[3]
	forged.ID = uuid.New()
	e.publish(mustEncode(t, e.cfg.SubjectPrefix, forged))
	noID := nats.NewMsg(e.cfg.SubjectPrefix + "." + e.tenant.String() + ".patient.test.happened")
	noID.Header.Set(nats.MsgIdHdr, "not-an-event-id")
	e.publish(noID)
	want := cleanReport(e, events)
	want.StreamMessages += 2
	want.Extra = found(forged.ID)
	want.Extra.Count = 2 // the message without an event id has no example
	assertReport(t, e.verify(nil), want)
}

func TestRelayVerifyFindsEventsOutOfOrder(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	e.appendEvents(streams(1), 4)
	ev := e.stored()
	e.publishEvents(ev[0], ev[2], ev[1], ev[3])
	want := cleanReport(e, ev)
	want.OutOfOrder = found(ev[2].ID) // held before ev[1], which precedes it
	assertReport(t, e.verify(nil), want)
}

func TestRelayVerifyExpiredAndNewerAreNotErrors(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	e.appendEvents(streams(1), 4)
	ev := e.stored()
	// A message for an event that commits after the check's head.
	newer := ev[3]
	newer.ID, newer.TxID = uuid.New(), ev[3].TxID+1
	stream := e.publishEvents(append(ev, newer)...)
	// Retention drops the oldest messages, as MaxAge does.
	if err := stream.Purge(testkit.Context(t), jetstream.WithPurgeSequence(3)); err != nil {
		t.Fatal(err)
	}
	want := cleanReport(e, ev)
	want.StreamMessages = 2
	want.NewerMessages = 1
	want.Expired = found(ev[0].ID, ev[1].ID)
	assertReport(t, e.verify(nil), want)
}
