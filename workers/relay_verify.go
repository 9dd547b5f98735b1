package workers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
)

// RelayVerifyEvents is what VerifyRelay reads from the event store: its
// head and its events in gap-free order (eventstore.Store).
type RelayVerifyEvents interface {
	Head(ctx context.Context, filter eventstore.Filter) (eventstore.Cursor, error)
	ReadAll(ctx context.Context, filter eventstore.Filter, after eventstore.Cursor, limit int) ([]chartstream.Event, eventstore.Cursor, error)
}

// RelayVerifyDeps are VerifyRelay's collaborators; both are required.
type RelayVerifyDeps struct {
	// Events is the event store, the source of truth: on the relay role's
	// pool to check every tenant, or the app role's for one tenant.
	Events RelayVerifyEvents
	// JetStream reads the relay's stream.
	JetStream jetstream.JetStream
}

// RelayVerifyOptions say what VerifyRelay compares.
type RelayVerifyOptions struct {
	// Stream is the relay's stream. Default DefaultStream.
	Stream string
	// SubjectPrefix is the relay's subject prefix. Default
	// DefaultSubjectPrefix.
	SubjectPrefix string
	// Tenant limits the check to one tenant; zero checks every tenant.
	Tenant chartstream.TenantID
	// Progress, optional, is told how many stream messages and store
	// events were read of an estimated total.
	Progress eventstore.ProgressFn
}

// RelayVerifyExamples is how many event ids a RelayDiscrepancy names.
const RelayVerifyExamples = 20

const (
	// relayVerifyPage is the events read from the store at a time and the
	// messages buffered from the stream.
	relayVerifyPage = 1000
	// relayVerifySettle is how long the check waits, once it has read the
	// whole stream, for the relay to publish events that committed before
	// the check began (the relay lags by milliseconds when healthy).
	relayVerifySettle = 2 * time.Second
	// relayVerifyStall is how long the stream may stay silent before the
	// check asks the server whether messages are still due.
	relayVerifyStall = 5 * time.Second
)

// RelayDiscrepancy counts one kind of discrepancy and names up to
// RelayVerifyExamples of the events concerned: ids only, since payloads
// can hold PHI.
type RelayDiscrepancy struct {
	Count    int64       `json:"count"`
	Examples []uuid.UUID `json:"examples,omitempty"`
}

func (d *RelayDiscrepancy) add(id uuid.UUID) {
	d.Count++
	if len(d.Examples) < RelayVerifyExamples {
		d.Examples = append(d.Examples, id)
	}
}

// RelayReport is the result of VerifyRelay. Only store events up to Head
// (read when the check began) and the messages for them are compared.
type RelayReport struct {
	Stream string            `json:"stream"`
	Head   eventstore.Cursor `json:"head"`
	// StoreEvents and StreamMessages are how many were compared.
	StoreEvents    int64 `json:"store_events"`
	StreamMessages int64 `json:"stream_messages"`
	// NewerMessages are messages for events that committed after Head,
	// left out of the comparison (not an error).
	NewerMessages int64 `json:"newer_messages"`
	// Missing events are in the store and not in the stream.
	Missing RelayDiscrepancy `json:"missing"`
	// Duplicated events are in the stream more than once.
	Duplicated RelayDiscrepancy `json:"duplicated"`
	// OutOfOrder events are held by the stream before the event that
	// precedes them in the store's cursor order (among the events the
	// stream holds): two swapped events count once.
	OutOfOrder RelayDiscrepancy `json:"out_of_order"`
	// Extra messages name no event of the store (forged, from another
	// database) or no event at all (no parsable Nats-Msg-Id; those have no
	// example).
	Extra RelayDiscrepancy `json:"extra"`
	// Expired events are older than the first message the stream still
	// holds: retention removed them (not an error).
	Expired RelayDiscrepancy `json:"expired"`
}

// OK reports whether the stream holds exactly the store's events, once
// each, in order (expired ones aside).
func (r RelayReport) OK() bool {
	return r.Missing.Count == 0 && r.Duplicated.Count == 0 && r.OutOfOrder.Count == 0 && r.Extra.Count == 0
}

// VerifyRelay checks the relay's work from the data alone, never from its
// checkpoint: it walks the relay's stream in sequence order and the event
// store in cursor order, up to the store's head when the check begins, and
// reports the events missing from the stream, duplicated in it, out of
// order, extra, or expired by retention.
//
// The order checked is the store's global cursor order (txid, position),
// across tenants and streams, which the relay must publish; with a Tenant
// it is that order among the tenant's events.
//
// It keeps about 30 bytes per stream message (event id, sequence, a
// flag), 30 MB for a million, and a page of store events at a time. An
// error means the check could not run (stream missing, NATS or PostgreSQL
// unreachable), never a discrepancy.
func VerifyRelay(ctx context.Context, deps RelayVerifyDeps, opts RelayVerifyOptions) (RelayReport, error) {
	if deps.Events == nil || deps.JetStream == nil {
		panic("workers: VerifyRelay with a nil dependency")
	}
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if opts.SubjectPrefix == "" {
		opts.SubjectPrefix = DefaultSubjectPrefix
	}
	c := &relayCheck{report: RelayReport{Stream: opts.Stream}, progress: opts.Progress}
	stream, err := deps.JetStream.Stream(ctx, opts.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return c.report, fmt.Errorf("relay verify: no stream %s", opts.Stream)
	}
	if err != nil {
		return c.report, fmt.Errorf("relay verify: stream %s: %w", opts.Stream, err)
	}
	filter := eventstore.Filter{Tenant: opts.Tenant}
	if c.head, err = deps.Events.Head(ctx, filter); err != nil {
		return c.report, fmt.Errorf("relay verify: %w", err)
	}
	c.report.Head = c.head
	subjects := opts.SubjectPrefix + ".>"
	if !opts.Tenant.IsZero() {
		subjects = TenantSubjects(opts.SubjectPrefix, opts.Tenant)
	}
	if err := c.readStream(ctx, stream, subjects); err != nil {
		return c.report, fmt.Errorf("relay verify: read stream %s: %w", opts.Stream, err)
	}
	c.tellProgress()
	// After the walk, so that what retention removed meanwhile counts as
	// expired too.
	if c.retainedFrom, err = firstRetained(ctx, stream, opts.SubjectPrefix); err != nil {
		return c.report, fmt.Errorf("relay verify: stream %s: %w", opts.Stream, err)
	}
	c.index()
	if err := c.readStore(ctx, deps.Events, filter); err != nil {
		return c.report, fmt.Errorf("relay verify: %w", err)
	}
	c.tellProgress()
	c.extras()
	return c.report, nil
}

// readStream indexes the stream's messages for subjects, headers only,
// until it has read them all and seen the store's head (or waited
// relayVerifySettle for the relay to publish it).
func (c *relayCheck) readStream(ctx context.Context, stream jetstream.Stream, subjects string) error {
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subjects}, HeadersOnly: true})
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(relayVerifyPage))
	if err != nil {
		return err
	}
	defer it.Stop()
	defer context.AfterFunc(ctx, it.Stop)()
	var pending uint64
	if info := cons.CachedInfo(); info != nil {
		pending = info.NumPending
	}
	c.entries = make([]streamEntry, 0, pending)
	c.total = 2 * int64(pending) // each message, then (about) its event
	caughtUp := pending == 0
	var newest eventstore.Cursor
	var settle time.Time
	for {
		wait := relayVerifyStall
		if caughtUp {
			if !c.head.After(newest) {
				break
			}
			if settle.IsZero() {
				settle = time.Now().Add(relayVerifySettle)
			}
			if wait = time.Until(settle); wait <= 0 {
				break
			}
		}
		msg, err := it.Next(jetstream.NextMaxWait(wait))
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, nats.ErrTimeout) && caughtUp:
			return nil
		case errors.Is(err, nats.ErrTimeout):
			// Silence before the end: the last messages may have been
			// removed, or NATS is down (then Info fails).
			info, err := cons.Info(ctx)
			if err != nil {
				return err
			}
			caughtUp = info.NumPending == 0
			continue
		case err != nil:
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		if cur, ok := c.addMessage(meta.Sequence.Stream, msg.Headers()); ok && cur.After(newest) {
			newest = cur
		}
		caughtUp = caughtUp || meta.NumPending == 0
		c.count()
	}
	return nil
}

// readStore walks the store's events up to the head in cursor order.
func (c *relayCheck) readStore(ctx context.Context, events RelayVerifyEvents, filter eventstore.Filter) error {
	var after eventstore.Cursor
	for {
		batch, next, err := events.ReadAll(ctx, filter, after, relayVerifyPage)
		if err != nil {
			return err
		}
		for _, e := range batch {
			cur := eventstore.CursorOf(e)
			if cur.After(c.head) {
				return nil
			}
			c.checkEvent(e.ID, cur)
			c.count()
		}
		if len(batch) == 0 {
			return nil
		}
		after = next
	}
}

// firstRetained returns the cursor of the oldest event message the stream
// still holds when messages were removed from its start (retention), and
// the zero cursor when it holds everything it was sent. An empty stream
// that held messages has lost them all: every event counts as expired.
// (Deleting the first message by hand looks the same as retention.)
func firstRetained(ctx context.Context, stream jetstream.Stream, prefix string) (eventstore.Cursor, error) {
	all := eventstore.Cursor{TxID: math.MaxInt64, Position: math.MaxInt64}
	info, err := stream.Info(ctx)
	if err != nil {
		return eventstore.Cursor{}, err
	}
	if info.State.FirstSeq <= 1 {
		return eventstore.Cursor{}, nil
	}
	if info.State.Msgs == 0 {
		return all, nil
	}
	m, err := stream.GetMsg(ctx, info.State.FirstSeq, jetstream.WithGetMsgSubject(prefix+".>"))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return all, nil
	}
	if err != nil {
		return eventstore.Cursor{}, err
	}
	cur, _ := cursorOf(m.Header)
	return cur, nil
}
