package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjetstream "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
)

// AnalyticsConfig configures the analytics projector.
type AnalyticsConfig struct {
	// Stream and SubjectPrefix are the relay's (default CLINICAL, clinical).
	Stream, SubjectPrefix string
	// Consumer is the durable JetStream consumer. Default "analytics".
	Consumer string
	// Tenants limits the projector to these tenants' events, messages and
	// sweep alike, as ProjectorConfig.Tenants does (to shard; tests and
	// benches sharing a database). Default every tenant.
	Tenants []chartstream.TenantID
	// DeadLetterStream holds copies of messages whose events were set
	// aside, on subjects chartstream.deadletter.<consumer>. Default
	// "CLINICAL_DEADLETTER".
	DeadLetterStream string
	// AckWait is how long JetStream waits for an ack before it
	// redelivers; the subscriber waits as long for the handler. Default 30s.
	AckWait time.Duration
	// MaxRetries is how often the Retry middleware tries a message again
	// after a failure that is not known to be permanent. Default 4.
	MaxRetries int
	// RetryInterval is the Retry middleware's first wait, doubled each
	// time up to 2s. Default 100ms.
	RetryInterval time.Duration
	// NakDelay is how long a message that still fails after its retries
	// (the database is down) waits before JetStream redelivers it.
	// Default 1s.
	NakDelay time.Duration
	// Page caps the events applied in one transaction. Default 1000.
	Page int
	// ReadAheadAt and ReadAheadAfter: a message with at least ReadAheadAt
	// messages pending behind it on the consumer, or stored at least
	// ReadAheadAfter ago, makes the projector apply its tenant's later
	// events from the event store too, up to Page, so that a backlog is
	// applied in batches (their messages then find nothing to do).
	// Defaults 50 and 100ms.
	ReadAheadAt    int
	ReadAheadAfter time.Duration
	// SweepInterval is how often every tenant's analytics checkpoint is
	// compared with its newest event in the store (Heads). Default 30s.
	SweepInterval time.Duration
	// LeaseRetry is how often a standby projector tries to become active.
	// Default 1s.
	LeaseRetry time.Duration
}

func (c *AnalyticsConfig) setDefaults() {
	for _, d := range []struct {
		p *string
		v string
	}{{&c.Stream, DefaultStream}, {&c.SubjectPrefix, DefaultSubjectPrefix}, {&c.Consumer, "analytics"}, {&c.DeadLetterStream, "CLINICAL_DEADLETTER"}} {
		if *d.p == "" {
			*d.p = d.v
		}
	}
	for _, d := range []struct {
		p *int
		v int
	}{{&c.MaxRetries, 4}, {&c.Page, 1000}, {&c.ReadAheadAt, 50}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{{&c.AckWait, 30 * time.Second}, {&c.RetryInterval, 100 * time.Millisecond}, {&c.NakDelay, time.Second}, {&c.ReadAheadAfter, 100 * time.Millisecond},
		{&c.SweepInterval, 30 * time.Second}, {&c.LeaseRetry, time.Second}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
}

// Validate reports every problem with the configuration.
func (c AnalyticsConfig) Validate() error {
	var errs []error
	if c.MaxRetries < 0 || c.Page < 1 || c.ReadAheadAt < 1 {
		errs = append(errs, errors.New("analytics projector: retries must not be negative; page and read-ahead threshold must be positive"))
	}
	if c.AckWait <= 0 || c.RetryInterval <= 0 || c.NakDelay <= 0 || c.ReadAheadAfter <= 0 || c.SweepInterval <= 0 || c.LeaseRetry <= 0 {
		errs = append(errs, errors.New("analytics projector: durations must be positive"))
	}
	return errors.Join(errs...)
}

// AnalyticsDeps are the analytics projector's collaborators; Heads,
// Verifier and Applied are optional.
type AnalyticsDeps struct {
	// Dial opens a NATS connection of the projector's own each time it
	// becomes active: watermill's subscriber drains its connection when
	// it closes, which must not be the process's shared one.
	Dial func() (*nats.Conn, error)
	// DB is the app role's pool: the analytics tables, a tenant per
	// transaction.
	DB *pgxpool.Pool
	// Sessions holds the lease (a session-mode pool). Default DB.
	Sessions *pgxpool.Pool
	// Events is the event store on the app role's pool: it fills gaps in
	// what JetStream delivered. The analytics read no PHI, so events are
	// never opened.
	Events EventHistory
	// Heads lists every tenant's newest event, for the sweep.
	Heads    HeadSource
	Verifier Verifier
	Logger   *slog.Logger
	// Applied observes the events applied, after their commit.
	Applied AppliedFn
}

// AnalyticsProjector keeps the analytics tables (projections/analytics) up
// to date from the clinical stream, as exactly as the read model projector:
// every event applied once, in each tenant's order, none skipped.
//
// It is built on watermill: a Router whose one handler consumes a durable
// JetStream consumer through watermill-nats's JetStream subscriber, behind
// the CorrelationID, PoisonQueue and Retry middleware. Watermill cannot
// meet every requirement by itself, and the projector does what is needed
// around it:
//
//   - Ordering across redeliveries. A message that fails is nacked and
//     redelivered after those behind it, and an ack that times out lets
//     the next message in while the first still runs. So order comes from
//     the data, not the delivery: each tenant's checkpoint (the gap-free
//     cursor of its last applied event) is locked and advanced in the
//     transaction that applies the events; a message is applied from its
//     body only when the relay says its predecessor is the checkpoint; a
//     gap is read from the event store; a message at or before the
//     checkpoint is done. Redeliveries change nothing.
//   - Ack after commit. The subscriber acks when the handler returns nil,
//     and the handler returns after its transaction committed. Acks are
//     not confirmed (AckAsync): a lost one is a redelivery, done at once.
//   - Per-tenant serialisation. Two transactions of one tenant serialise
//     on its checkpoint row (SELECT ... FOR UPDATE). One projector is
//     active across processes (an advisory-lock lease, as the read model
//     projector's), so its messages are not split between processes.
//   - Batching. Watermill hands over one message at a time. When the
//     projector is behind (many messages pending on the server, or a
//     message that waited in the client's buffer), the handler applies its
//     tenant's later events from the event store too, a page per
//     transaction, and their messages are then done without touching the
//     database (the last checkpoint committed is remembered).
//   - Poison. The PoisonQueue middleware only republishes a message.
//     Before it does, an event that cannot be applied (known-permanent at
//     once, otherwise after the Retry middleware's attempts) is set aside
//     in the database (analytics_dead_letters) and the checkpoint moves
//     past it in one transaction, or the tenant's later events would stall
//     behind it forever. The copy on the dead-letter stream names it.
//     While the database is unreachable nothing is set aside: messages are
//     nacked and redelivered after NakDelay, however long it takes.
//   - Messages no relay announced. A periodic sweep compares each tenant's
//     checkpoint with its newest event in the store and catches up.
//   - Closing. The subscriber drains its NATS connection when the router
//     closes, so the projector dials a connection of its own (Dial); and
//     a message arriving as it closes would be sent on a closed channel in
//     the subscriber (a race and a panic), so the flow stops first
//     (flowGate).
type AnalyticsProjector struct {
	deps AnalyticsDeps
	cfg  AnalyticsConfig
	log  *slog.Logger

	setAsides atomic.Int64

	// known is the last checkpoint committed per tenant, a lower bound
	// of the real one (checkpoints only move forward).
	knownMu sync.Mutex
	known   map[chartstream.TenantID]eventstore.Cursor
	// months are the partitions known to exist.
	monthsMu sync.Mutex
	months   map[time.Time]bool
}

// NewAnalyticsProjector returns the analytics projector. It panics on a
// missing dependency.
func NewAnalyticsProjector(deps AnalyticsDeps, cfg AnalyticsConfig) (*AnalyticsProjector, error) {
	if deps.Dial == nil || deps.DB == nil || deps.Events == nil || deps.Logger == nil {
		panic("workers: NewAnalyticsProjector with a nil dependency")
	}
	if deps.Sessions == nil {
		deps.Sessions = deps.DB
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &AnalyticsProjector{deps: deps, cfg: cfg, log: deps.Logger.With("worker", "analytics", "consumer", cfg.Consumer),
		known: map[chartstream.TenantID]eventstore.Cursor{}, months: map[time.Time]bool{}}, nil
}

// SetAside is how many events were set aside since start.
func (a *AnalyticsProjector) SetAside() int64 { return a.setAsides.Load() }

// Run projects until ctx is done. Of all analytics projectors with the
// same Consumer, across processes, one is active at a time.
func (a *AnalyticsProjector) Run(ctx context.Context) error {
	lease{db: a.deps.Sessions, name: "analytics." + a.cfg.Consumer, retry: a.cfg.LeaseRetry, log: a.log}.run(ctx, a.consume)
	return nil
}

// consume runs the watermill router (and the sweep) until ctx ends.
func (a *AnalyticsProjector) consume(ctx context.Context) error {
	nc, err := a.deps.Dial()
	if err != nil {
		return fmt.Errorf("analytics: connect to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("analytics: jetstream: %w", err)
	}
	if err := ensureDeadLetterStream(ctx, js, a.cfg.DeadLetterStream); err != nil {
		return fmt.Errorf("analytics: %w", err)
	}
	gate := &flowGate{}
	logger := watermill.NewSlogLoggerWithLevelMapping(a.log, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	sub, err := wmjetstream.NewSubscriber(wmjetstream.SubscriberConfig{
		Conn: nc, Logger: logger, AckWaitTimeout: a.cfg.AckWait,
		ResourceInitializer: a.consumer(gate), NakDelay: wmjetstream.NewStaticDelay(a.cfg.NakDelay),
		Unmarshaler: unmarshaler{},
		// A lost ack is a redelivery, which is done at once: no need to
		// wait for the server to confirm each.
		AckAsync: true,
	})
	if err != nil {
		return fmt.Errorf("analytics: subscriber: %w", err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: a.cfg.AckWait}, logger)
	if err != nil {
		return err
	}
	poison, err := middleware.PoisonQueueWithFilter(poisonPublisher{js: js}, deadLetterPrefix+a.cfg.Consumer, isSetAside)
	if err != nil {
		return err
	}
	router.AddMiddleware(
		middleware.CorrelationID,
		poison,
		a.setAsideMiddleware,
		middleware.Retry{
			MaxRetries: a.cfg.MaxRetries, InitialInterval: a.cfg.RetryInterval, MaxInterval: 2 * time.Second, Multiplier: 2,
			ShouldRetry: func(p middleware.RetryParams) bool { return !permanent(p.Err) },
		}.Middleware,
	)
	router.AddConsumerHandler("analytics", a.cfg.SubjectPrefix+".>", sub, a.handle)

	sweepCtx, stopSweep := context.WithCancel(ctx)
	swept := make(chan struct{})
	go func() { defer close(swept); a.sweep(sweepCtx) }()
	defer func() { stopSweep(); <-swept }()
	// The router gets a context of its own: the gate closes before it
	// stops (see flowGate).
	routerCtx, stopRouter := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRouter()
	ran := make(chan error, 1)
	go func() { ran <- router.Run(routerCtx) }()
	select {
	case err := <-ran:
		if err != nil {
			return fmt.Errorf("analytics: router: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	gate.close(a.cfg.AckWait)
	stopRouter()
	<-ran
	return nil
}

// consumer returns the subscriber's resource initializer: it creates (or
// updates) the durable consumer, every tenant's events acked one by one,
// behind gate.
func (a *AnalyticsProjector) consumer(gate *flowGate) wmjetstream.ResourceInitializer {
	return func(ctx context.Context, js jetstream.JetStream, topic string) (jetstream.Consumer, func(context.Context, watermill.LoggerAdapter), error) {
		cc := jetstream.ConsumerConfig{
			Durable: a.cfg.Consumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: a.cfg.AckWait,
			DeliverPolicy: jetstream.DeliverAllPolicy, FilterSubject: topic,
		}
		if len(a.cfg.Tenants) > 0 {
			cc.FilterSubject = ""
			for _, t := range a.cfg.Tenants {
				cc.FilterSubjects = append(cc.FilterSubjects, TenantSubjects(a.cfg.SubjectPrefix, t))
			}
		}
		c, err := js.CreateOrUpdateConsumer(ctx, a.cfg.Stream, cc)
		if err != nil {
			return nil, nil, fmt.Errorf("consumer %s: %w", a.cfg.Consumer, err)
		}
		return gatedConsumer{Consumer: c, gate: gate}, nil, nil // durable: it outlives this subscription
	}
}
