// Package eventstore is chartstream's source of truth: an append-only,
// hash-chained sequence of tenant-tagged clinical events in PostgreSQL.
//
// Appends are optimistic (expected version, or any version unless the
// stream gained events the decision depends on) and atomic, also across
// streams (Write), one network round trip each; concurrent appends of a
// tenant share one (send.go). ReadAll
// never skips an event even though transactions commit out of position
// order: it reads in (transaction id, position) order and only below the
// oldest transaction still running (see read.go). PHI fields
// are sealed with AES-256-GCM under a per-patient data key, which
// crypto-shredding destroys (see keys.go). Every event's hash covers the
// previous event's hash in its stream; Verify proves nothing was altered.
package eventstore

import (
	"errors"
	"fmt"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore/internal/group"
	"github.com/chartstream/chartstream/internal/phi"
)

// Config configures a Store.
type Config struct {
	// MaxPayloadBytes caps one event's JSON payload. Default 256 KiB.
	MaxPayloadBytes int
	// MaxEventsPerAppend caps one append. Default 1000.
	MaxEventsPerAppend int
	// AppendConcurrency caps the append transactions in flight at once;
	// appends arriving while all are busy queue and go out together, a
	// tenant's in one transaction (see group.go). Default 2.
	AppendConcurrency int
	// MaxAppendGroup caps the appends sharing one transaction. Default 64.
	MaxAppendGroup int
	// ResolveTimeout bounds learning the outcome of a write whose
	// connection failed at the commit; after it the write reports
	// ECOMMITUNKNOWN. Default 10s.
	ResolveTimeout time.Duration
	// KeyCache sizes the cache of unwrapped data keys (phi.DEKCacheConfig
	// defaults: 10,000 keys, 5 minutes).
	KeyCache phi.DEKCacheConfig
	// Observer hears of every write and group commit (metrics). Default
	// none.
	Observer Observer
	// TracerProvider, when set, traces every write and records its trace
	// context with its events (chartstream.Metadata.TraceParent). Default
	// none: no spans, and events record no trace.
	TracerProvider trace.TracerProvider
}

func (c *Config) setDefaults() {
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = 256 << 10
	}
	if c.MaxEventsPerAppend == 0 {
		c.MaxEventsPerAppend = 1000
	}
	if c.AppendConcurrency == 0 {
		c.AppendConcurrency = 2
	}
	if c.MaxAppendGroup == 0 {
		c.MaxAppendGroup = 64
	}
	if c.ResolveTimeout == 0 {
		c.ResolveTimeout = 10 * time.Second
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.MaxPayloadBytes < 0 {
		errs = append(errs, errors.New("max payload bytes must be positive"))
	}
	if c.MaxEventsPerAppend < 0 {
		errs = append(errs, errors.New("max events per append must be positive"))
	}
	if c.AppendConcurrency < 0 {
		errs = append(errs, errors.New("append concurrency must be positive"))
	}
	if c.MaxAppendGroup < 0 {
		errs = append(errs, errors.New("max append group must be positive"))
	}
	return errors.Join(errs...)
}

// Store is the PostgreSQL event store. Its pool decides what it may see: the
// app role sees one tenant per transaction; the relay role may read every
// tenant's events but write none.
type Store struct {
	pool     *pgxpool.Pool
	registry *Registry
	keys     phi.KeyProvider
	deks     *phi.DEKCache
	cfg      Config
	writes   *group.Queue[chartstream.TenantID, *write, []chartstream.AppendResult]
	tkeys    tenantKeys
	// tracer is nil when tracing is off.
	tracer trace.Tracer

	// wakeDue and waking coalesce commit notifications (see wake).
	wakeDue, waking atomic.Bool
}

// New returns a Store. pool, registry and keys are required: a nil one is a
// wiring bug and panics.
func New(pool *pgxpool.Pool, registry *Registry, keys phi.KeyProvider, cfg Config) (*Store, error) {
	if pool == nil || registry == nil || keys == nil {
		panic("eventstore: New with a nil dependency")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	deks, err := phi.NewDEKCache(cfg.KeyCache)
	if err != nil {
		return nil, fmt.Errorf("eventstore: %w", err)
	}
	s := &Store{pool: pool, registry: registry, keys: keys, deks: deks, cfg: cfg}
	if cfg.TracerProvider != nil {
		s.tracer = cfg.TracerProvider.Tracer(tracerName)
	}
	s.writes = group.New(s.send, group.Config{Concurrency: cfg.AppendConcurrency, MaxRequests: cfg.MaxAppendGroup, MaxWeight: cfg.MaxEventsPerAppend})
	return s, nil
}

// Names allowed for stream and event types; the database checks the same.
var (
	streamTypePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	eventTypePattern  = regexp.MustCompile(`^[a-z][a-z0-9_.]{0,126}$`)
)
