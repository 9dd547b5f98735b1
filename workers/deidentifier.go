package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/deid"
)

// The de-identified stream's defaults.
const (
	// DefaultDeidStream is the JetStream stream of de-identified events.
	DefaultDeidStream = "CLINICAL_DEID"
	// DefaultDeidSubjectPrefix starts every de-identified event's subject:
	// deid.<tenant_id>.<stream_type>.<event_type>.
	DefaultDeidSubjectPrefix = "deid"
	// DefaultDeidName names the de-identifier's lease and checkpoint.
	DefaultDeidName = "deid"
	// deidCheckpointBucket is the JetStream key-value bucket of the
	// de-identifiers' checkpoints: beside the stream they describe, so a
	// wiped JetStream loses both together.
	deidCheckpointBucket = "chartstream_deid_checkpoints"
)

// DeidentifierConfig configures the de-identifier.
type DeidentifierConfig struct {
	// Name names the lease and the checkpoint. Default "deid".
	Name string
	// Source and SourcePrefix are the relay's stream and subject prefix
	// (default CLINICAL, clinical).
	Source, SourcePrefix string
	// Stream is the de-identified stream. Default "CLINICAL_DEID".
	Stream string
	// SubjectPrefix starts every de-identified subject. Default "deid".
	SubjectPrefix string
	// Replicas, DuplicateWindow, MaxAge and MaxBytes shape the stream as
	// the relay's do its own (defaults 1, 10m, 30 days, 10 GiB).
	Replicas        int
	DuplicateWindow time.Duration
	MaxAge          time.Duration
	MaxBytes        int64
	// MaxInFlight bounds a batch: messages published and not yet
	// acknowledged. Default 512.
	MaxInFlight int
	// AckTimeout bounds the wait for a batch's acknowledgements. Default 10s.
	AckTimeout time.Duration
	// LeaseRetry is how often a standby tries to become active. Default 1s.
	LeaseRetry time.Duration
	// MaxBackoff caps the wait between retries after a failure. Default 5s.
	MaxBackoff time.Duration
	// Tenants limits the de-identifier to these tenants' events (to shard
	// de-identifiers by tenant, each with its own Name); empty means all.
	// It must not change under a Name: the checkpoint counts the source
	// messages it selects.
	Tenants []chartstream.TenantID
}

func (c *DeidentifierConfig) setDefaults() {
	for _, d := range []struct {
		p *string
		v string
	}{
		{&c.Name, DefaultDeidName}, {&c.Source, DefaultStream}, {&c.SourcePrefix, DefaultSubjectPrefix},
		{&c.Stream, DefaultDeidStream}, {&c.SubjectPrefix, DefaultDeidSubjectPrefix},
	} {
		if *d.p == "" {
			*d.p = d.v
		}
	}
	relay := RelayConfig{Replicas: c.Replicas, DuplicateWindow: c.DuplicateWindow, MaxAge: c.MaxAge, MaxBytes: c.MaxBytes,
		MaxInFlight: c.MaxInFlight, AckTimeout: c.AckTimeout, LeaseRetry: c.LeaseRetry, MaxBackoff: c.MaxBackoff}
	relay.setDefaults()
	c.Replicas, c.DuplicateWindow, c.MaxAge, c.MaxBytes = relay.Replicas, relay.DuplicateWindow, relay.MaxAge, relay.MaxBytes
	c.MaxInFlight, c.AckTimeout, c.LeaseRetry, c.MaxBackoff = relay.MaxInFlight, relay.AckTimeout, relay.LeaseRetry, relay.MaxBackoff
}

// Validate reports every problem with the configuration.
func (c DeidentifierConfig) Validate() error {
	var errs []error
	if err := (RelayConfig{Replicas: c.Replicas, MaxInFlight: c.MaxInFlight, DuplicateWindow: c.DuplicateWindow}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("de-identifier: %w", err))
	}
	if c.SubjectPrefix == c.SourcePrefix || c.Stream == c.Source {
		errs = append(errs, errors.New("de-identifier: its stream and subjects must not be the relay's"))
	}
	return errors.Join(errs...)
}

// DeidSource is what the de-identifier needs of the event store (on the
// app role's pool): opening PHI, the tenant's pseudonym key, which
// patients were erased, and an encounter's first event.
type DeidSource interface {
	Open(ctx context.Context, e *chartstream.Event) error
	PseudonymKey(ctx context.Context, tenant chartstream.TenantID) ([]byte, error)
	ErasedSubjects(ctx context.Context, tenant chartstream.TenantID, subjects []uuid.UUID) (map[uuid.UUID]bool, error)
	ReadStream(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, fromVersion int64) ([]chartstream.Event, error)
}

// DeidentifiedParams describe one de-identified message JetStream stored.
type DeidentifiedParams struct {
	// Source is the clinical event (opened).
	Source   chartstream.Event
	Sequence uint64
	AckedAt  time.Time
}

// DeidentifiedFn observes stored de-identified messages (benchmarks).
type DeidentifiedFn func(DeidentifiedParams)

// DeidentifierDeps are the de-identifier's collaborators; Verifier and
// Published are optional.
type DeidentifierDeps struct {
	JetStream jetstream.JetStream
	// Sessions holds the lease: a session-mode pool.
	Sessions *pgxpool.Pool
	Events   DeidSource
	Rules    *deid.Deidentifier
	// Verifier, when set, skips (and logs) every source message without
	// the relay's good signature.
	Verifier Verifier
	// Signer signs every de-identified message.
	Signer    Signer
	Logger    *slog.Logger
	Published DeidentifiedFn
}

// Deidentifier publishes every clinical event, de-identified (see
// internal/deid), on the CLINICAL_DEID stream, exactly once and in the
// clinical stream's order, so in each tenant's order.
//
// It reads CLINICAL with an ordered consumer and publishes as the relay
// does: pipelined, each message expecting the stream's last sequence to be
// its predecessor's, so the stream only ever holds a prefix of what it
// publishes; a batch goes out behind the previous ones' messages without
// waiting for their acknowledgements, which are checked in order as they
// come, and the first that fails (or does not come within AckTimeout)
// starts it over. Every source message yields exactly one message (a
// withheld one when its patient was erased, or its PHI cannot be read)
// unless it is not the relay's, which is decided by its content alone. A
// checkpoint (a JetStream key-value entry beside the stream, saved at most
// once a second) records the source sequence and the stream sequence the
// acknowledgements reached; a restart skips as many source messages as the
// stream holds beyond that checkpoint, so nothing is published twice and
// nothing is left out. Message ids are the events' pseudonyms besides, for
// JetStream's duplicate window.
//
// Messages carry no source sequence or event id: nothing in them links
// back to the identified stream without the tenant's key.
type Deidentifier struct {
	deps DeidentifierDeps
	cfg  DeidentifierConfig
}

// NewDeidentifier returns a de-identifier. It panics on a missing
// dependency.
func NewDeidentifier(deps DeidentifierDeps, cfg DeidentifierConfig) (*Deidentifier, error) {
	if deps.JetStream == nil || deps.Sessions == nil || deps.Events == nil || deps.Rules == nil || deps.Signer == nil || deps.Logger == nil {
		panic("workers: NewDeidentifier with a nil dependency")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Deidentifier{deps: deps, cfg: cfg}, nil
}

// Run de-identifies until ctx is done. Of all de-identifiers with the same
// Name, across processes, one is active at a time.
func (d *Deidentifier) Run(ctx context.Context) error {
	log := d.deps.Logger.With("worker", "deidentifier", "name", d.cfg.Name)
	lease{db: d.deps.Sessions, name: "deid." + d.cfg.Name, retry: d.cfg.LeaseRetry, log: log}.run(ctx,
		retrying(d.cfg.MaxBackoff, log, "de-identifier failed; resuming from its checkpoint", func(ctx context.Context) error { return d.runOnce(ctx, log) }))
	return nil
}

// deidCheckpoint is where the de-identifier got to: the last source
// sequence it is done with, and the stream's last sequence then.
type deidCheckpoint struct {
	Source uint64 `json:"source_seq"`
	Deid   uint64 `json:"deid_seq"`
}

// runOnce resumes from the checkpoint and de-identifies until ctx ends or
// something fails.
func (d *Deidentifier) runOnce(ctx context.Context, log *slog.Logger) error {
	stream, err := d.deps.JetStream.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        d.cfg.Stream,
		Description: "chartstream clinical events de-identified under HIPAA Safe Harbor, one message per event",
		Subjects:    []string{d.cfg.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage, Replicas: d.cfg.Replicas, Duplicates: d.cfg.DuplicateWindow,
		MaxAge: d.cfg.MaxAge, MaxBytes: d.cfg.MaxBytes, Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("ensure stream %s: %w", d.cfg.Stream, err)
	}
	kv, err := d.deps.JetStream.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: deidCheckpointBucket,
		Description: "where each de-identifier got to", Storage: jetstream.FileStorage, Replicas: d.cfg.Replicas, History: 1})
	if err != nil {
		return fmt.Errorf("checkpoint bucket: %w", err)
	}
	cp, err := loadDeidCheckpoint(ctx, kv, d.cfg.Name)
	if err != nil {
		return err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", d.cfg.Stream, err)
	}
	run := &deidRun{d: d, log: log, kv: kv, stream: stream, published: info.State.LastSeq, acked: info.State.LastSeq, prev: make(map[chartstream.TenantID]uint64),
		patients: make(map[uuid.UUID]uuid.UUID), unreadable: make(map[chartstream.TenantID]int)}
	switch last := info.State.LastSeq; {
	case last >= cp.Deid:
		// Acknowledged after the checkpoint: the next this many source
		// messages that yield one are in the stream already.
		run.skip = last - cp.Deid
	default:
		log.Warn("the de-identified stream holds less than its checkpoint says (it was recreated); going on from the checkpoint")
	}
	src, err := d.deps.JetStream.Stream(ctx, d.cfg.Source)
	if err != nil {
		return fmt.Errorf("source stream %s: %w", d.cfg.Source, err)
	}
	srcInfo, err := src.Info(ctx)
	if err != nil {
		return fmt.Errorf("source stream %s: %w", d.cfg.Source, err)
	}
	if srcInfo.State.LastSeq < cp.Source {
		log.Warn("the clinical stream holds less than the checkpoint says (it was recreated); starting from its beginning")
		cp.Source, run.skip = 0, 0
	}
	run.source, run.done, run.saved = cp.Source, cp, cp
	oc := jetstream.OrderedConsumerConfig{FilterSubjects: []string{d.cfg.SourcePrefix + ".>"}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if len(d.cfg.Tenants) > 0 {
		oc.FilterSubjects = oc.FilterSubjects[:0]
		for _, t := range d.cfg.Tenants {
			oc.FilterSubjects = append(oc.FilterSubjects, TenantSubjects(d.cfg.SourcePrefix, t))
		}
	}
	if cp.Source > 0 {
		oc.DeliverPolicy, oc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, cp.Source+1
	}
	cons, err := d.deps.JetStream.OrderedConsumer(ctx, d.cfg.Source, oc)
	if err != nil {
		return fmt.Errorf("read %s: %w", d.cfg.Source, err)
	}
	incoming := make(chan jetstream.Msg, 2*d.cfg.MaxInFlight)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case incoming <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(d.cfg.MaxInFlight))
	if err != nil {
		return fmt.Errorf("read %s: %w", d.cfg.Source, err)
	}
	defer cc.Stop()
	return run.loop(ctx, incoming)
}
