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

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/logging"
)

// Defaults of the relay's stream, shared by everything that reads it (the
// projector, relay verification, the binary's flags).
const (
	// DefaultRelayStream is the JetStream stream the relay publishes to.
	DefaultRelayStream = "CLINICAL"
	// DefaultSubjectPrefix starts every event message's subject.
	DefaultSubjectPrefix = "clinical"
)

// RelayConfig configures the relay.
type RelayConfig struct {
	// Name names the relay's checkpoint and lease. Default "clinical".
	Name string
	// Stream is the JetStream stream. Default DefaultRelayStream.
	Stream string
	// SubjectPrefix starts every subject. Default DefaultSubjectPrefix.
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
}

func (c *RelayConfig) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Name, "clinical")
	def(&c.Stream, DefaultRelayStream)
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
// tail of every tenant's committed events.
type EventSource interface {
	Subscribe(ctx context.Context, filter eventstore.Filter, after eventstore.Cursor, opts eventstore.SubscribeOptions, fn eventstore.SubscribeFn) error
}

// PublishedParams describe one event JetStream acknowledged.
type PublishedParams struct {
	Event    chartstream.Event
	Sequence uint64
	AckedAt  time.Time
}

// PublishedFn observes acknowledged events (benchmarks, metrics).
type PublishedFn func(PublishedParams)

// RelayDeps are the relay's collaborators; all but Published are required.
type RelayDeps struct {
	// Events reads every tenant's events: an event store on the relay
	// role's pool.
	Events EventSource
	// DB is the relay role's pool, for the lease and the checkpoint.
	DB *pgxpool.Pool
	// JetStream publishes. Its connection should not buffer while
	// reconnecting (messaging.Connect does not), so a publish during an
	// outage fails at once instead of overtaking an earlier one later.
	JetStream jetstream.JetStream
	Logger    *slog.Logger
	Published PublishedFn
}

// Relay publishes every committed event on JetStream exactly once, in the
// event store's gap-free order, across crashes and outages.
//
// No dual write: the relay only reads what committed. Exactly once: each
// message's Nats-Msg-Id is the event id, so JetStream drops an event
// republished after a crash between publish and checkpoint; on start the
// relay also resumes after the last event in the stream when that is ahead
// of its checkpoint, which covers crashes longer than the duplicate window.
// In order: events go out in cursor order and the relay stops at the first
// failed acknowledgement, resuming from its checkpoint.
//
// It publishes with nats.go's jetstream package rather than watermill-nats:
// watermill's publisher waits for each acknowledgement in turn and sets its
// own message ids, while the relay needs the event id as Nats-Msg-Id and
// asynchronous publishing with a bounded number of acknowledgements in
// flight for throughput.
type Relay struct {
	deps RelayDeps
	cfg  RelayConfig
	// afterPublish runs between the acknowledgements and the checkpoint;
	// tests use it to crash there.
	afterPublish func(events []chartstream.Event)
}

// NewRelay returns a relay. It panics on a missing dependency.
func NewRelay(deps RelayDeps, cfg RelayConfig) (*Relay, error) {
	if deps.Events == nil || deps.DB == nil || deps.JetStream == nil || deps.Logger == nil {
		panic("workers: NewRelay with a nil dependency")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Relay{deps: deps, cfg: cfg}, nil
}

// Run relays until ctx is done. Of all relays with the same Name, across
// processes, one is active at a time (see lease); the others wait as
// standbys and take over when it dies.
func (r *Relay) Run(ctx context.Context) error {
	log := r.deps.Logger.With("worker", "relay", "relay", r.cfg.Name)
	lease{db: r.deps.DB, name: "relay." + r.cfg.Name, retry: r.cfg.LeaseRetry, log: log}.run(ctx, func(ctx context.Context) error {
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			err := r.publishFromCheckpoint(ctx)
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("relay publishing failed; will resume from checkpoint", logging.Error(err), "backoff", backoff.String())
			sleep(ctx, backoff)
			backoff = min(backoff*2, r.cfg.MaxBackoff)
		}
		return nil
	})
	return nil
}

// publishFromCheckpoint makes sure the stream exists, finds where to
// resume, and publishes until ctx ends or a publish fails.
func (r *Relay) publishFromCheckpoint(ctx context.Context) error {
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
		if c, ok := cursorOf(last.Header); ok && c.After(cursor) {
			cursor = c
		}
	}
	return r.deps.Events.Subscribe(ctx, eventstore.Filter{}, cursor,
		eventstore.SubscribeOptions{BatchSize: r.cfg.MaxInFlight, PollInterval: r.cfg.PollInterval}, r.publishBatch)
}

// publishBatch publishes a batch asynchronously, waits for every
// acknowledgement in order, and only then moves the checkpoint.
func (r *Relay) publishBatch(ctx context.Context, events []chartstream.Event, next eventstore.Cursor) error {
	futures := make([]jetstream.PubAckFuture, len(events))
	for i, e := range events {
		msg, err := EncodeMessage(r.cfg.SubjectPrefix, e)
		if err != nil {
			return err
		}
		if futures[i], err = r.deps.JetStream.PublishMsgAsync(msg, jetstream.WithMsgID(e.ID.String()), jetstream.WithStallWait(10*time.Second)); err != nil {
			return fmt.Errorf("publish event %s: %w", e.ID, err)
		}
	}
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if r.deps.Published != nil {
				r.deps.Published(PublishedParams{Event: events[i], Sequence: ack.Sequence, AckedAt: time.Now()})
			}
		case err := <-f.Err():
			return fmt.Errorf("publish event %s: %w", events[i].ID, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if r.afterPublish != nil {
		r.afterPublish(events)
	}
	return r.saveCheckpoint(ctx, next)
}
