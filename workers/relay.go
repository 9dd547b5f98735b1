// Package workers runs chartstream's background work: the relay that
// publishes every committed event on NATS JetStream, and (later) the
// projectors that build read models from it.
package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
)

// The relay's defaults, which the projector and the verify commands share.
const (
	// DefaultStream is the JetStream stream of clinical events.
	DefaultStream = "CLINICAL"
	// DefaultSubjectPrefix starts every clinical event's subject.
	DefaultSubjectPrefix = "clinical"
	// DefaultRelayName names the relay's checkpoint and lease.
	DefaultRelayName = "clinical"
)

// RelayConfig configures the relay.
type RelayConfig struct {
	// Name names the relay's checkpoint and lease. Default "clinical".
	Name string
	// Stream is the JetStream stream. Default "CLINICAL".
	Stream string
	// SubjectPrefix starts every subject. Default "clinical".
	SubjectPrefix string
	// Replicas of the stream: 1 on a single node, 3 in a cluster. Default 1.
	Replicas int
	// DuplicateWindow is how long JetStream remembers message ids to drop
	// a republished event. Default 10m.
	DuplicateWindow time.Duration
	// MaxAge is the stream's retention by age. Default 30 days.
	MaxAge time.Duration
	// MaxBytes is the stream's retention by size; -1 is unlimited.
	// Default 10 GiB.
	MaxBytes int64
	// MaxInFlight bounds published-but-unacknowledged events, and so the
	// batch read from the event store. Default 512.
	MaxInFlight int
	// LeaseRetry is how often a standby tries to become the active relay.
	// Default 1s; a standby takes over within about LeaseRetry + 1s.
	LeaseRetry time.Duration
	// MaxBackoff caps the wait between retries while NATS is down.
	// Default 5s.
	MaxBackoff time.Duration
	// PollInterval is the longest the relay sleeps without a commit
	// notification. Default 200ms.
	PollInterval time.Duration
	// AckTimeout bounds the wait for JetStream's acknowledgements of a
	// batch; a lost one makes the relay start over from the stream's
	// tail rather than wait until its lease is lost. Default 10s.
	AckTimeout time.Duration
}

func (c *RelayConfig) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Name, DefaultRelayName)
	def(&c.Stream, DefaultStream)
	def(&c.SubjectPrefix, DefaultSubjectPrefix)
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 10 * time.Minute
	}
	if c.MaxAge == 0 {
		c.MaxAge = 30 * 24 * time.Hour
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 10 << 30
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 512
	}
	if c.LeaseRetry == 0 {
		c.LeaseRetry = time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.PollInterval == 0 {
		c.PollInterval = 200 * time.Millisecond
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 10 * time.Second
	}
}

// Validate reports every problem with the configuration.
func (c RelayConfig) Validate() error {
	var errs []error
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		errs = append(errs, errors.New("relay: stream replicas must be 1, 3 or 5"))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, errors.New("relay: max in-flight must be positive"))
	}
	if c.DuplicateWindow < time.Second {
		errs = append(errs, errors.New("relay: duplicate window must be at least 1s"))
	}
	return errors.Join(errs...)
}

// EventSource is what the relay needs from the event store: a gap-free
// tail of every tenant's committed events, and each tenant's event before
// a given one.
type EventSource interface {
	Subscribe(ctx context.Context, filter eventstore.Filter, after eventstore.Cursor, opts eventstore.SubscribeOptions, fn eventstore.SubscribeFn) error
	Previous(ctx context.Context, before map[chartstream.TenantID]eventstore.Cursor) (map[chartstream.TenantID]eventstore.Cursor, error)
}

// PublishedParams describe one event JetStream acknowledged.
type PublishedParams struct {
	Event    chartstream.Event
	Sequence uint64
	AckedAt  time.Time
}

// PublishedFn observes acknowledged events (benchmarks, metrics). An event
// JetStream stored while its acknowledgement was lost (the connection or
// the stream's leader died in between) is never reported: the relay
// resumes after it, from the stream's tail. Count the stream for totals.
type PublishedFn func(PublishedParams)

// RelayDeps are the relay's collaborators; all but Published are required.
type RelayDeps struct {
	// Events reads every tenant's events: an event store on the relay
	// role's pool.
	Events EventSource
	// DB is the relay role's pool, for the checkpoint.
	DB *pgxpool.Pool
	// Sessions holds the lease and listens for commits: a pool in
	// session mode (not PgBouncer's transaction mode). Default DB.
	Sessions *pgxpool.Pool
	// JetStream publishes. Its connection should not buffer while
	// reconnecting (messaging.Connect does not), so a publish during an
	// outage fails at once instead of overtaking an earlier one later.
	JetStream jetstream.JetStream
	// Signer, when set, signs every message (MESSAGE_SIGNING_KEY_FILE),
	// so consumers can refuse messages from anyone else.
	Signer    Signer
	Logger    *slog.Logger
	Published PublishedFn
	// TracerProvider, when set, traces the publishing of every event that
	// records a trace, and passes the trace on in the message's headers
	// (see trace.go). Default none.
	TracerProvider trace.TracerProvider
}

// Signer signs a message's content (internal/signing.Signer).
type Signer interface {
	Sign(content []byte) string
}

// Relay publishes every committed event on JetStream exactly once, in the
// event store's gap-free order, across crashes and outages.
//
// No dual write: the relay only reads what committed. In order and never
// skipping: every message is published expecting the stream's last
// sequence to be the one before it (Nats-Expected-Last-Sequence), with no
// client retries, so JetStream stores a message only right after its
// predecessor; a batch whose acknowledgement fails, times out or comes
// back out of sequence is abandoned, and the relay starts over after the
// last event the stream holds. That is safe because the stream only ever
// holds a prefix of the gap-free order: resuming from its tail (or from
// the checkpoint, when the stream was reset) never leaves an earlier event
// out. Exactly once: nothing the stream holds is published again, and each
// message's Nats-Msg-Id is the event id besides.
//
// Each message also names the tenant's previous event (HeaderPrevTxID,
// HeaderPrevPosition), so a consumer can tell a missed event from the next
// one.
//
// It publishes with nats.go's jetstream package rather than watermill-nats:
// watermill's publisher waits for each acknowledgement in turn and sets its
// own message ids, while the relay needs the event id as Nats-Msg-Id,
// expected-sequence headers, and pipelined publishing for throughput.
type Relay struct {
	deps RelayDeps
	cfg  RelayConfig
	// tracer is nil when tracing is off.
	tracer trace.Tracer
	// afterPublish runs between the acknowledgements and the checkpoint;
	// tests use it to crash there.
	afterPublish func(events []chartstream.Event)
}

// NewRelay returns a relay. It panics on a missing dependency.
func NewRelay(deps RelayDeps, cfg RelayConfig) (*Relay, error) {
	if deps.Events == nil || deps.DB == nil || deps.JetStream == nil || deps.Logger == nil {
		panic("workers: NewRelay with a nil dependency")
	}
	if deps.Sessions == nil {
		deps.Sessions = deps.DB
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Relay{deps: deps, cfg: cfg}
	if deps.TracerProvider != nil {
		r.tracer = deps.TracerProvider.Tracer(tracerName)
	}
	return r, nil
}

// Run relays until ctx is done. Of all relays with the same Name, across
// processes, one is active at a time (see lease); the others wait as
// standbys and take over when it dies.
func (r *Relay) Run(ctx context.Context) error {
	log := r.deps.Logger.With("worker", "relay", "relay", r.cfg.Name)
	lease{db: r.deps.Sessions, name: "relay." + r.cfg.Name, retry: r.cfg.LeaseRetry, log: log}.run(ctx,
		retrying(r.cfg.MaxBackoff, log, "relay publishing failed; will resume from the stream's tail", r.publishFromTail))
	return nil
}

// publishFromTail makes sure the stream exists, resumes after the last
// event it holds (or the checkpoint, if that is later), and publishes
// until ctx ends or a publish fails.
func (r *Relay) publishFromTail(ctx context.Context) error {
	stream, err := r.deps.JetStream.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        r.cfg.Stream,
		Description: "chartstream clinical events, one message per committed event",
		Subjects:    []string{r.cfg.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Replicas:    r.cfg.Replicas,
		Duplicates:  r.cfg.DuplicateWindow,
		MaxAge:      r.cfg.MaxAge,
		MaxBytes:    r.cfg.MaxBytes,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("ensure stream %s: %w", r.cfg.Stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", r.cfg.Stream, err)
	}
	cursor, err := r.checkpoint(ctx)
	if err != nil {
		return err
	}
	last, err := stream.GetLastMsgForSubject(ctx, r.cfg.SubjectPrefix+".>")
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return fmt.Errorf("last message of %s: %w", r.cfg.Stream, err)
	default:
		c, ok := cursorOf(last.Header)
		if !ok {
			return fmt.Errorf("the last message of %s (sequence %d) is not a relayed event", r.cfg.Stream, last.Sequence)
		}
		if c.After(cursor) {
			cursor = c
		}
	}
	pub := &publication{lastSeq: info.State.LastSeq, prev: make(map[chartstream.TenantID]eventstore.Cursor)}
	return r.deps.Events.Subscribe(ctx, eventstore.Filter{}, cursor,
		eventstore.SubscribeOptions{BatchSize: r.cfg.MaxInFlight, PollInterval: r.cfg.PollInterval, Listener: r.deps.Sessions},
		func(ctx context.Context, events []chartstream.Event, next eventstore.Cursor) error {
			return r.publishBatch(ctx, pub, events, next)
		})
}

// publication is what the relay knows of the stream while it publishes:
// its last sequence, and the last event published for each tenant.
type publication struct {
	lastSeq uint64
	prev    map[chartstream.TenantID]eventstore.Cursor
}

// publishBatch publishes a batch, pipelined, each message expecting its
// predecessor's sequence, checks every acknowledgement in order, and only
// then moves the checkpoint.
func (r *Relay) publishBatch(ctx context.Context, pub *publication, events []chartstream.Event, next eventstore.Cursor) (err error) {
	if err := r.previous(ctx, pub, events); err != nil {
		return err
	}
	var spans []trace.Span
	if r.tracer != nil {
		spans = make([]trace.Span, len(events))
		defer func() { endSpans(spans, err) }()
	}
	futures := make([]jetstream.PubAckFuture, len(events))
	for i, e := range events {
		msg, err := EncodeMessage(r.cfg.SubjectPrefix, e)
		if err != nil {
			return err
		}
		setPrevious(msg, pub.prev[e.Tenant])
		pub.prev[e.Tenant] = eventstore.CursorOf(e)
		if r.deps.Signer != nil {
			msg.Header.Set(HeaderSignature, r.deps.Signer.Sign(signedContent(msg.Header, msg.Data)))
		}
		if spans != nil {
			spans[i] = r.publishSpan(e, msg)
		}
		futures[i], err = r.deps.JetStream.PublishMsgAsync(msg, jetstream.WithMsgID(e.ID.String()),
			jetstream.WithExpectLastSequence(pub.lastSeq+uint64(i)), jetstream.WithRetryAttempts(0),
			jetstream.WithStallWait(r.cfg.AckTimeout))
		if err != nil {
			return fmt.Errorf("publish event %s: %w", e.ID, err)
		}
	}
	timeout := time.NewTimer(r.cfg.AckTimeout)
	defer timeout.Stop()
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if want := pub.lastSeq + uint64(i) + 1; ack.Sequence != want || ack.Duplicate {
				return fmt.Errorf("event %s stored as sequence %d (duplicate %t), expected %d", events[i].ID, ack.Sequence, ack.Duplicate, want)
			}
			if r.deps.Published != nil {
				r.deps.Published(PublishedParams{Event: events[i], Sequence: ack.Sequence, AckedAt: time.Now()})
			}
			if spans != nil && spans[i] != nil {
				spans[i].End()
				spans[i] = nil
			}
		case err := <-f.Err():
			return fmt.Errorf("publish event %s: %w", events[i].ID, err)
		case <-timeout.C:
			return fmt.Errorf("no acknowledgement for event %s within %s", events[i].ID, r.cfg.AckTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	pub.lastSeq += uint64(len(events))
	if r.afterPublish != nil {
		r.afterPublish(events)
	}
	return r.saveCheckpoint(ctx, next)
}

// previous looks up, for the tenants of the batch this publication has not
// published yet, the event before their first in the batch.
func (r *Relay) previous(ctx context.Context, pub *publication, events []chartstream.Event) error {
	firsts := make(map[chartstream.TenantID]eventstore.Cursor)
	for _, e := range events {
		if _, known := pub.prev[e.Tenant]; known {
			continue
		}
		if _, seen := firsts[e.Tenant]; !seen {
			firsts[e.Tenant] = eventstore.CursorOf(e)
		}
	}
	if len(firsts) == 0 {
		return nil
	}
	prevs, err := r.deps.Events.Previous(ctx, firsts)
	if err != nil {
		return fmt.Errorf("tenants' previous events: %w", err)
	}
	for t := range firsts {
		pub.prev[t] = prevs[t] // the zero cursor before a tenant's first event
	}
	return nil
}
