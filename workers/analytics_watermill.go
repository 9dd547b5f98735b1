package workers

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/postgres"
)

// metadataPending and metadataStored carry, on a watermill message, how
// many messages were pending on the consumer behind it when it was
// delivered, and when JetStream stored it (Unix nanoseconds).
const (
	metadataPending = "Chartstream-Pending"
	metadataStored  = "Chartstream-Stored"
)

// unmarshaler turns a JetStream message into a watermill message keeping
// what the projector needs, which watermill-nats's default drops: the
// event id (Nats-Msg-Id, part of what the relay signs) as the message's
// UUID and in its metadata, every header, the consumer's pending count,
// and the relay's correlation id where the CorrelationID middleware looks.
// It never fails: the subscriber would dereference a nil message. A header
// with several values keeps its first; the signature then fails, and the
// message is refused.
type unmarshaler struct{}

func (unmarshaler) Unmarshal(m jetstream.Msg) (*message.Message, error) {
	wm := message.NewMessage(m.Headers().Get(nats.MsgIdHdr), m.Data())
	for k, v := range m.Headers() {
		if len(v) > 0 {
			wm.Metadata.Set(k, v[0])
		}
	}
	if meta, err := m.Metadata(); err == nil {
		wm.Metadata.Set(metadataPending, strconv.FormatUint(meta.NumPending, 10))
		wm.Metadata.Set(metadataStored, strconv.FormatInt(meta.Timestamp.UnixNano(), 10))
	}
	if id := m.Headers().Get(HeaderCorrelationID); id != "" {
		middleware.SetCorrelationID(id, wm)
	}
	return wm, nil
}

// header rebuilds the NATS headers the projector reads from a message's
// metadata.
func header(md message.Metadata) nats.Header {
	h := nats.Header{}
	for _, k := range []string{nats.MsgIdHdr, HeaderTenant, HeaderTxID, HeaderPosition, HeaderPrevTxID, HeaderPrevPosition, HeaderSignature} {
		if v := md.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	return h
}

// errNoEvent refuses a message that names no event.
var errNoEvent = chartstream.Errorf(chartstream.EINVALID, "the message names no event")

// target reads what a message asks for, refusing (EINVALID) one without the
// relay's good signature or that names no event: as parseDelivery does for
// the read model projector.
func (a *AnalyticsProjector) target(msg *message.Message) (analyticsTarget, error) {
	h := header(msg.Metadata)
	if a.deps.Verifier != nil {
		if err := a.deps.Verifier.Verify(signedContent(h, msg.Payload), h.Get(HeaderSignature)); err != nil {
			return analyticsTarget{}, errUnsigned
		}
	}
	t := analyticsTarget{body: msg.Payload}
	tenant, err := chartstream.ParseTenantID(h.Get(HeaderTenant))
	c, ok := cursorOf(h)
	if err != nil || !ok || c.Position == 0 {
		e, decodeErr := DecodeMessage(msg.Payload)
		if decodeErr != nil || e.Position == 0 {
			return t, errNoEvent
		}
		tenant, c = e.Tenant, eventstore.CursorOf(e)
	}
	t.tenant, t.cursor = tenant, c
	t.prev, t.hasPrev = cursorHeaders(h, HeaderPrevTxID, HeaderPrevPosition)
	// Behind: many pending on the server, or (the client buffers what it
	// pulled) a message that waited.
	pending, _ := strconv.Atoi(msg.Metadata.Get(metadataPending))
	stored, _ := strconv.ParseInt(msg.Metadata.Get(metadataStored), 10, 64)
	t.readAhead = pending >= a.cfg.ReadAheadAt || (stored > 0 && time.Since(time.Unix(0, stored)) >= a.cfg.ReadAheadAfter)
	return t, nil
}

// setAsideError says events were set aside while handling a message: the
// PoisonQueue middleware puts a copy of the message, naming them, on the
// dead-letter stream, and the message is acked.
type setAsideError struct {
	events []string
}

func (e *setAsideError) Error() string {
	return "analytics: set aside event(s) " + strings.Join(e.events, ",")
}

// isSetAside is the PoisonQueue's filter: events set aside, and refused
// messages. An unreachable database or an unknown failure still within
// its retries is nacked instead, for a redelivery.
func isSetAside(err error) bool {
	var sa *setAsideError
	return errors.As(err, &sa) || errors.Is(err, errUnsigned) || errors.Is(err, errNoEvent) || errors.Is(err, errNotInStore)
}

// setAsideMiddleware sits between the PoisonQueue and the Retry
// middleware: when an event still fails once Retry gave up (or at once,
// when the failure is permanent), it sets the event aside and runs the
// handler again for the rest of the message's work.
func (a *AnalyticsProjector) setAsideMiddleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		var aside []string
		for range maxSetAsidePerMessage {
			out, err := h(msg)
			var f *eventFailure
			if !errors.As(err, &f) || postgres.Unavailable(err) || transient(err) {
				if err == nil && len(aside) > 0 {
					return out, &setAsideError{events: aside}
				}
				return out, err
			}
			if err := a.setAside(msg.Context(), f); err != nil {
				return nil, &analyticsError{tenant: f.event.Tenant, err: err}
			}
			aside = append(aside, f.event.ID.String())
		}
		return nil, errors.New("analytics: too many events set aside for one message; trying again later")
	}
}

// maxSetAsidePerMessage bounds the events one message's handling sets
// aside before it is nacked, to be redelivered (and go on) later.
const maxSetAsidePerMessage = 100

// poisonPublisher publishes the PoisonQueue's copies on the dead-letter
// stream: the message's body and headers (its metadata), the reason in
// Chartstream-Dead-Letter-Reason. Nats-Msg-Id is left out, so that the
// stream's duplicate window does not drop a copy of a message that the
// read model projector dead-lettered too.
type poisonPublisher struct{ js jetstream.JetStream }

func (p poisonPublisher) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		nm := nats.NewMsg(topic)
		nm.Data = m.Payload
		for k, v := range m.Metadata {
			if k != nats.MsgIdHdr {
				nm.Header.Set(k, v)
			}
		}
		nm.Header.Set(headerDeadLetterReason, m.Metadata.Get(middleware.ReasonForPoisonedKey))
		if _, err := p.js.PublishMsg(context.Background(), nm); err != nil {
			return err
		}
	}
	return nil
}

func (poisonPublisher) Close() error { return nil }

// flowGate works around watermill-nats v2.1.3's JetStream subscriber,
// which hands each message to the router by a send on a channel that
// another goroutine closes when the subscription ends: a message arriving
// as the router stops is a send on a closed channel (a data race, and a
// panic in the NATS client's goroutine that takes the process down). The
// projector closes the gate before it stops the router: the consumers stop
// pulling, messages still arriving are nakked for whichever projector is
// active next, and the gate waits for the messages in hand to be done.
type flowGate struct {
	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
	ccs      []jetstream.ConsumeContext
}

func (g *flowGate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.inflight.Add(1)
	return true
}

// close stops the flow and waits up to wait for the messages in hand.
func (g *flowGate) close(wait time.Duration) {
	g.mu.Lock()
	g.closed = true
	ccs := g.ccs
	g.mu.Unlock()
	for _, cc := range ccs {
		cc.Stop()
	}
	done := make(chan struct{})
	go func() { g.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
	}
}

// gatedConsumer is a consumer whose messages pass the gate.
type gatedConsumer struct {
	jetstream.Consumer
	gate *flowGate
}

func (c gatedConsumer) Consume(h jetstream.MessageHandler, opts ...jetstream.PullConsumeOpt) (jetstream.ConsumeContext, error) {
	cc, err := c.Consumer.Consume(func(m jetstream.Msg) {
		if !c.gate.enter() {
			_ = m.Nak()
			return
		}
		defer c.gate.inflight.Done()
		h(m)
	}, opts...)
	if err == nil {
		c.gate.mu.Lock()
		c.gate.ccs = append(c.gate.ccs, cc)
		c.gate.mu.Unlock()
	}
	return cc, err
}
