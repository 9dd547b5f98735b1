package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
)

// Projection is a read model the projector keeps up to date
// (projections/*.Projector). Apply runs in the event's tenant transaction
// and must be idempotent. Its writes are pipelined: it must not depend on
// what an Exec returns (reads see every earlier write).
type Projection interface {
	Name() string
	Apply(ctx context.Context, tx pgx.Tx, e chartstream.Event) error
}

// AppliedFn observes events the projector applied (benchmarks, metrics).
type AppliedFn func(e chartstream.Event, at time.Time)

// ProjectorConfig configures the projector.
type ProjectorConfig struct {
	// Stream and SubjectPrefix are the relay's (default CLINICAL, clinical).
	Stream, SubjectPrefix string
	// Consumer is the durable JetStream consumer. Default "projections".
	Consumer string
	// Lanes is how many tenants' events are applied concurrently; a
	// tenant's events are applied by one at a time, in order. Default 4.
	Lanes int
	// BatchSize caps the messages of one tenant handed to a lane at once.
	// Default 200.
	BatchSize int
	// CatchUpPage caps the events applied in one transaction, also when
	// they are read from the event store. Default 1000.
	CatchUpPage int
	// MaxAttempts is how often an event failing for an unknown reason is
	// tried before it is set aside. Default 5. Known-permanent failures
	// are set aside at once; an unreachable database is retried until
	// it is back.
	MaxAttempts int
	// DeadLetterStream holds copies of events set aside and messages
	// that name no event, on subjects chartstream.deadletter.<consumer>.
	// Default "CLINICAL_DEADLETTER".
	DeadLetterStream string
	// AckWait is how long JetStream waits for an ack before redelivering.
	// Default 30s.
	AckWait time.Duration
	// MaxAckPending bounds the messages delivered and not yet acked.
	// Default 10,000.
	MaxAckPending int
	// HoldFor is how long a tenant whose work fails keeps its messages
	// before it releases them and catches up from the event store later,
	// so that they do not fill MaxAckPending and stall other tenants.
	// Default 10s; it must be under AckWait.
	HoldFor time.Duration
	// SweepInterval is how often the projector compares every tenant's
	// checkpoint with the event store and catches up any tenant behind
	// (see ProjectorDeps.Heads). Default 30s.
	SweepInterval time.Duration
	// LeaseRetry is how often a standby projector tries to become active.
	// Default 1s.
	LeaseRetry time.Duration
	// Tenants limits the projector to these tenants' events (to shard
	// projectors by tenant, each with its own Consumer); empty means all.
	Tenants []chartstream.TenantID
}

func (c *ProjectorConfig) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Stream, DefaultStream)
	def(&c.SubjectPrefix, DefaultSubjectPrefix)
	def(&c.Consumer, "projections")
	def(&c.DeadLetterStream, "CLINICAL_DEADLETTER")
	for _, d := range []struct {
		p *int
		v int
	}{{&c.Lanes, 4}, {&c.BatchSize, 200}, {&c.CatchUpPage, 1000}, {&c.MaxAttempts, 5}, {&c.MaxAckPending, 10_000}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{{&c.AckWait, 30 * time.Second}, {&c.HoldFor, 10 * time.Second}, {&c.SweepInterval, 30 * time.Second}, {&c.LeaseRetry, time.Second}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
}

// Validate reports every problem with the configuration.
func (c ProjectorConfig) Validate() error {
	var errs []error
	if c.Lanes < 1 || c.BatchSize < 1 || c.CatchUpPage < 1 || c.MaxAttempts < 1 || c.MaxAckPending < 1 {
		errs = append(errs, errors.New("projector: lanes, batch size, catch-up page, attempts and max ack pending must be positive"))
	}
	if c.HoldFor >= c.AckWait {
		errs = append(errs, errors.New("projector: hold time must be under the ack wait"))
	}
	return errors.Join(errs...)
}

// ProjectorDeps are the projector's collaborators; Heads and Applied are
// optional.
type ProjectorDeps struct {
	JetStream jetstream.JetStream
	// DB is the app role's pool: the read models, a tenant per
	// transaction.
	DB *pgxpool.Pool
	// Sessions holds the lease: a pool in session mode (not PgBouncer's
	// transaction mode), since the lease is a session's advisory lock.
	// Default DB.
	Sessions *pgxpool.Pool
	// Events is the event store on the app role's pool: it opens the PHI
	// of events and fills gaps in what JetStream delivered.
	Events EventHistory
	// Heads, when set, lists every tenant's newest event (a cross-tenant
	// read: the event store on the relay role's pool), for the sweep that
	// catches up tenants whose messages never came.
	Heads       HeadSource
	Projections []Projection
	// Verifier, when set, refuses (dead-letters) every message without the
	// relay's good signature: anyone else who can publish on the stream's
	// subjects cannot put facts into the read models.
	Verifier Verifier
	Logger   *slog.Logger
	Applied  AppliedFn
}

// Verifier checks a message's signature (internal/signing.Verifier).
type Verifier interface {
	Verify(content []byte, sig string) error
}

// HeadSource lists each tenant's newest readable event.
type HeadSource interface {
	TenantHeads(ctx context.Context) (map[chartstream.TenantID]eventstore.Cursor, error)
}

// Projector consumes the clinical stream and applies every event to every
// projection, exactly once and in each tenant's order.
//
// Order: one projector is active at a time (lease); within it, a tenant's
// events are applied by one lane at a time, in the event store's order,
// while other tenants proceed on other lanes (see schedule).
//
// Nothing skipped: the relay tells each message's predecessor in its
// tenant. A message is applied from its body only when that predecessor is
// the tenant's checkpoint; otherwise the gap is read from the event store,
// the source of truth (see project.go). Messages at or before the
// checkpoint (redeliveries, late ones) are done. A periodic sweep compares
// every tenant's checkpoint with the store and catches up what no message
// announced (Heads).
//
// Exactly-once effect: each projection's checkpoint advances in the
// transaction that applies the events. Messages are acked after that
// transaction commits, nakked when the projector stops or loses its lease.
//
// Failures: while the database is unreachable a tenant waits and retries;
// an event that fails for a known-permanent reason, or MaxAttempts times
// for an unknown one, is set aside (projection_dead_letters and the
// dead-letter stream, logged by id, never its content) and the tenant goes
// on. A tenant that cannot progress for HoldFor releases its messages and
// is caught up from the event store once it can, so it never holds the
// consumer's MaxAckPending against the other tenants.
type Projector struct {
	deps       ProjectorDeps
	cfg        ProjectorConfig
	deadLetter atomic.Int64

	statesMu sync.Mutex
	states   map[string]*tenantWork
}

// NewProjector returns a projector. It panics on a missing dependency.
func NewProjector(deps ProjectorDeps, cfg ProjectorConfig) (*Projector, error) {
	if deps.JetStream == nil || deps.DB == nil || deps.Events == nil || deps.Logger == nil || len(deps.Projections) == 0 {
		panic("workers: NewProjector with a nil dependency")
	}
	if deps.Sessions == nil {
		deps.Sessions = deps.DB
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Projector{deps: deps, cfg: cfg, states: make(map[string]*tenantWork)}, nil
}

// DeadLettered is how many events or messages were set aside since start.
func (p *Projector) DeadLettered() int64 { return p.deadLetter.Load() }

// Run projects until ctx is done. Of all projectors with the same Consumer,
// across processes, one is active at a time.
func (p *Projector) Run(ctx context.Context) error {
	log := p.deps.Logger.With("worker", "projector", "consumer", p.cfg.Consumer)
	lease{db: p.deps.Sessions, name: "projector." + p.cfg.Consumer, retry: p.cfg.LeaseRetry, log: log}.run(ctx, func(ctx context.Context) error {
		return p.consume(ctx, log)
	})
	return nil
}

// consume reads the durable consumer into the schedule and runs the lanes
// until ctx ends, then hands back (naks) what it still holds.
func (p *Projector) consume(ctx context.Context, log *slog.Logger) error {
	if err := ensureDeadLetterStream(ctx, p.deps.JetStream, p.cfg.DeadLetterStream); err != nil {
		return err
	}
	cons, err := p.deps.JetStream.CreateOrUpdateConsumer(ctx, p.cfg.Stream, jetstream.ConsumerConfig{
		Durable:        p.cfg.Consumer,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        p.cfg.AckWait,
		MaxAckPending:  p.cfg.MaxAckPending,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		FilterSubjects: p.filterSubjects(),
	})
	if err != nil {
		return fmt.Errorf("consumer %s: %w", p.cfg.Consumer, err)
	}
	msgs, err := cons.Messages(jetstream.PullMaxMessages(2 * p.cfg.BatchSize))
	if err != nil {
		return fmt.Errorf("consume %s: %w", p.cfg.Consumer, err)
	}

	sched := newSchedule(p.cfg.BatchSize)
	lanes, stopLanes := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range p.cfg.Lanes {
		wg.Add(1)
		go func() { defer wg.Done(); p.lane(lanes, log, sched) }()
	}
	wg.Add(2)
	go func() { defer wg.Done(); p.release(lanes, log, sched) }()
	go func() { defer wg.Done(); p.sweep(lanes, log, sched) }()

	err = p.dispatch(ctx, log, msgs, sched)
	msgs.Stop()
	stopLanes()
	wg.Wait()
	held := sched.close()
	for _, d := range held {
		_ = d.msg.Nak() // at once to whichever projector is active next
	}
	if len(held) > 0 {
		log.Info("projector stopped; handed back held messages", "messages", len(held))
	}
	return err
}

// errUnsigned is why a message without the relay's good signature is
// dead-lettered.
var errUnsigned = chartstream.Errorf(chartstream.EINVALID, "the message does not carry the relay's signature")

// dispatch queues every message for its tenant, never waiting on one.
func (p *Projector) dispatch(ctx context.Context, log *slog.Logger, msgs jetstream.MessagesContext, sched *schedule) error {
	go func() { <-ctx.Done(); msgs.Stop() }()
	for {
		m, err := msgs.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("next message: %w", err)
		}
		if p.deps.Verifier != nil {
			if err := p.deps.Verifier.Verify(signedContent(m.Headers(), m.Data()), m.Headers().Get(HeaderSignature)); err != nil {
				p.deadLetterMsg(ctx, log, m, chartstream.Event{}, errUnsigned)
				continue
			}
		}
		tenant, d, err := parseDelivery(m)
		if err != nil {
			p.deadLetterMsg(ctx, log, m, chartstream.Event{}, err)
			continue
		}
		sched.push(tenant, d)
	}
}

// lane applies the tenants the schedule hands it until ctx ends.
func (p *Projector) lane(ctx context.Context, log *slog.Logger, sched *schedule) {
	for {
		j, ok := sched.next(ctx)
		if !ok {
			return
		}
		o := p.project(ctx, log, j)
		for _, d := range j.items[:o.done] {
			_ = d.msg.Ack() // a lost ack is a redelivery, which is done at once
		}
		sched.finish(j, o)
	}
}

// release acks the messages of tenants stuck longer than HoldFor; the
// schedule catches them up from the event store instead (see releaseStuck).
func (p *Projector) release(ctx context.Context, log *slog.Logger, sched *schedule) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		released := sched.releaseStuck(p.cfg.HoldFor, p.cfg.MaxAckPending/4)
		for _, d := range released {
			_ = d.msg.Ack()
		}
		if len(released) > 0 {
			log.Warn("released the messages of tenants that cannot progress; they catch up from the event store later", "messages", len(released))
		}
	}
}

// filterSubjects selects every tenant's events, or those of cfg.Tenants.
func (p *Projector) filterSubjects() []string {
	if len(p.cfg.Tenants) == 0 {
		return []string{p.cfg.SubjectPrefix + ".>"}
	}
	subjects := make([]string, len(p.cfg.Tenants))
	for i, t := range p.cfg.Tenants {
		subjects[i] = TenantSubjects(p.cfg.SubjectPrefix, t)
	}
	return subjects
}
