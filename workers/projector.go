package workers

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/postgres"
)

// Projection is a read model the projector keeps up to date
// (projections/*.Projector). Apply runs in the event's tenant transaction
// and must be idempotent. Its writes are pipelined: it must not depend on
// what an Exec returns (reads see every earlier write).
type Projection interface {
	Name() string
	Apply(ctx context.Context, tx pgx.Tx, e chartstream.Event) error
}

// EventOpener opens an event's sealed PHI and upcasts its payload: the
// event store on the app role's pool.
type EventOpener interface {
	Open(ctx context.Context, e *chartstream.Event) error
}

// AppliedFn observes events the projector applied (benchmarks, metrics).
type AppliedFn func(e chartstream.Event, at time.Time)

// ProjectorConfig configures the projector.
type ProjectorConfig struct {
	// Stream and SubjectPrefix are the relay's (DefaultRelayStream,
	// DefaultSubjectPrefix).
	Stream, SubjectPrefix string
	// Consumer is the durable JetStream consumer. Default "projections".
	Consumer string
	// Lanes is how many tenants' events are applied concurrently; a
	// tenant's events always go to the same lane, in order. Default 4.
	Lanes int
	// BatchSize caps the events of one tenant applied in one transaction.
	// Default 200.
	BatchSize int
	// MaxAttempts is how often an event failing for an unknown reason is
	// tried before it is dead-lettered. Default 5. Known-permanent failures
	// are dead-lettered at once; an unreachable database is retried until
	// it is back.
	MaxAttempts int
	// DeadLetterStream holds events no projection could apply, on subjects
	// chartstream.deadletter.<consumer>. Default "CLINICAL_DEADLETTER".
	DeadLetterStream string
	// AckWait is how long JetStream waits for an ack before redelivering.
	// Default 15s.
	AckWait time.Duration
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
	def(&c.Stream, DefaultRelayStream)
	def(&c.SubjectPrefix, DefaultSubjectPrefix)
	def(&c.Consumer, "projections")
	def(&c.DeadLetterStream, "CLINICAL_DEADLETTER")
	for _, d := range []struct {
		p *int
		v int
	}{{&c.Lanes, 4}, {&c.BatchSize, 200}, {&c.MaxAttempts, 5}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	if c.AckWait == 0 {
		c.AckWait = 15 * time.Second
	}
	if c.LeaseRetry == 0 {
		c.LeaseRetry = time.Second
	}
}

// Validate reports every problem with the configuration.
func (c ProjectorConfig) Validate() error {
	var errs []error
	if c.Lanes < 1 || c.BatchSize < 1 || c.MaxAttempts < 1 {
		errs = append(errs, errors.New("projector: lanes, batch size and attempts must be positive"))
	}
	return errors.Join(errs...)
}

// ProjectorDeps are the projector's collaborators; Applied is optional.
type ProjectorDeps struct {
	JetStream   jetstream.JetStream
	DB          *pgxpool.Pool
	Events      EventOpener
	Projections []Projection
	Logger      *slog.Logger
	Applied     AppliedFn
}

// Projector consumes the clinical stream and applies every event to every
// projection.
//
// Order: one projector is active at a time (lease), and within it each
// tenant's events go to one lane and are applied in stream order; tenants
// are spread over lanes, so one tenant's burst or poison event delays only
// its lane. Exactly-once effect: each projection's checkpoint advances in
// the transaction that applies the event, and an event at or before the
// checkpoint is skipped, so redelivery changes nothing. Poison: an event
// that fails MaxAttempts times goes to the dead-letter stream, is logged by
// id (never its content) and counted, and the lane moves on.
type Projector struct {
	deps       ProjectorDeps
	cfg        ProjectorConfig
	deadLetter atomic.Int64
}

// NewProjector returns a projector. It panics on a missing dependency.
func NewProjector(deps ProjectorDeps, cfg ProjectorConfig) (*Projector, error) {
	if deps.JetStream == nil || deps.DB == nil || deps.Events == nil || deps.Logger == nil || len(deps.Projections) == 0 {
		panic("workers: NewProjector with a nil dependency")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Projector{deps: deps, cfg: cfg}, nil
}

// DeadLettered is how many events were dead-lettered since start.
func (p *Projector) DeadLettered() int64 { return p.deadLetter.Load() }

// Run projects until ctx is done.
func (p *Projector) Run(ctx context.Context) error {
	log := p.deps.Logger.With("worker", "projector", "consumer", p.cfg.Consumer)
	lease{db: p.deps.DB, name: "projector." + p.cfg.Consumer, retry: p.cfg.LeaseRetry, log: log}.run(ctx, func(ctx context.Context) error {
		return p.consume(ctx, log)
	})
	return nil
}

// consume reads the durable consumer and feeds the lanes until ctx ends.
func (p *Projector) consume(ctx context.Context, log *slog.Logger) error {
	if _, err := p.deps.JetStream.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: p.cfg.DeadLetterStream, Subjects: []string{"chartstream.deadletter.>"},
		Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
	}); err != nil {
		return fmt.Errorf("dead-letter stream: %w", err)
	}
	cons, err := p.deps.JetStream.CreateOrUpdateConsumer(ctx, p.cfg.Stream, jetstream.ConsumerConfig{
		Durable:        p.cfg.Consumer,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        p.cfg.AckWait,
		MaxAckPending:  8 * p.cfg.BatchSize * p.cfg.Lanes,
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
	go func() { <-ctx.Done(); msgs.Stop() }()

	lanes := make([]chan jetstream.Msg, p.cfg.Lanes)
	var wg sync.WaitGroup
	for i := range lanes {
		lanes[i] = make(chan jetstream.Msg, 2*p.cfg.BatchSize)
		wg.Add(1)
		go func() { defer wg.Done(); p.lane(ctx, log, lanes[i]) }()
	}
	defer func() {
		for _, l := range lanes {
			close(l)
		}
		wg.Wait()
	}()
	for {
		m, err := msgs.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("next message: %w", err)
		}
		lanes[laneOf(m.Headers().Get(HeaderTenant), len(lanes))] <- m
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

func laneOf(tenant string, lanes int) int {
	h := fnv.New32a()
	h.Write([]byte(tenant))
	return int(h.Sum32() % uint32(lanes))
}

// lane applies its messages in order, a tenant's consecutive events in one
// transaction.
func (p *Projector) lane(ctx context.Context, log *slog.Logger, in <-chan jetstream.Msg) {
	batch := make([]jetstream.Msg, 0, p.cfg.BatchSize)
	for m := range in {
		batch = append(batch[:0], m)
	drain:
		for len(batch) < p.cfg.BatchSize {
			select {
			case m, ok := <-in:
				if !ok {
					break drain
				}
				batch = append(batch, m)
			default:
				break drain
			}
		}
		for len(batch) > 0 && ctx.Err() == nil {
			n := sameTenant(batch)
			p.applyGroup(ctx, log, batch[:n])
			batch = batch[n:]
		}
	}
}

// sameTenant is how many messages at the front of batch share a tenant.
func sameTenant(batch []jetstream.Msg) int {
	t := batch[0].Headers().Get(HeaderTenant)
	n := 1
	for n < len(batch) && batch[n].Headers().Get(HeaderTenant) == t {
		n++
	}
	return n
}

// applyGroup applies one tenant's messages in one transaction; if that
// fails, one by one with retries, dead-lettering what still fails.
func (p *Projector) applyGroup(ctx context.Context, log *slog.Logger, msgs []jetstream.Msg) {
	events := make([]chartstream.Event, 0, len(msgs))
	for _, m := range msgs {
		e, err := DecodeMessage(m.Data())
		if err != nil {
			p.deadLetterMsg(ctx, log, m, chartstream.Event{}, err)
			continue
		}
		events = append(events, e)
	}
	if len(events) == len(msgs) && p.apply(ctx, events) == nil {
		p.ackAll(msgs, events)
		return
	}
	for _, m := range msgs {
		e, err := DecodeMessage(m.Data())
		if err != nil {
			continue // dead-lettered above
		}
		backoff := 50 * time.Millisecond
		for attempt := 1; ; attempt++ {
			err = p.apply(ctx, []chartstream.Event{e})
			if err == nil || ctx.Err() != nil {
				break
			}
			// Parking an event lets the tenant's later events move the
			// checkpoint past it, so only a failure that cannot heal is
			// parked: at once when known to be permanent, after
			// MaxAttempts when unknown. While the database is unreachable
			// the lane waits and retries, however long it takes.
			transient := postgres.Unavailable(err)
			if permanent(err) || (!transient && attempt >= p.cfg.MaxAttempts) {
				p.deadLetterMsg(ctx, log, m, e, err)
				break
			}
			if attempt%20 == 0 {
				log.Warn("event still failing; retrying", "event_id", e.ID.String(), "attempts", attempt, logging.Error(err))
			}
			sleep(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
		}
		if err == nil {
			p.ackAll([]jetstream.Msg{m}, []chartstream.Event{e})
		}
	}
}

func (p *Projector) ackAll(msgs []jetstream.Msg, events []chartstream.Event) {
	now := time.Now()
	for i, m := range msgs {
		_ = m.Ack() // a lost ack is a redelivery, which the checkpoint skips
		if p.deps.Applied != nil {
			p.deps.Applied(events[i], now)
		}
	}
}

// apply opens the events and applies them to every projection in one
// transaction of their tenant, advancing each projection's checkpoint.
func (p *Projector) apply(ctx context.Context, events []chartstream.Event) error {
	for i := range events {
		if err := p.deps.Events.Open(ctx, &events[i]); err != nil {
			return err
		}
	}
	return postgres.InTenantTx(ctx, p.deps.DB, events[0].Tenant, func(tx pgx.Tx) error {
		return ApplyEvents(ctx, tx, p.deps.Projections, events)
	})
}
