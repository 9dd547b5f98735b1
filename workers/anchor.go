package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/audit"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/logging"
)

// AnchorConfig configures the anchor worker.
type AnchorConfig struct {
	// Name names the worker's lease and cursor. Default "anchors".
	Name string
	// Interval is how often each tenant with new events gets a
	// checkpoint. Default 5s.
	Interval time.Duration
	// MaxPerRound caps the events one round reads before it signs, so a
	// backlog (the first run on a large store) is anchored in steps.
	// Default 200,000.
	MaxPerRound int
	// LeaseRetry is how often a standby tries to become the active
	// worker. Default 1s.
	LeaseRetry time.Duration
	// Stream configures CLINICAL_ANCHORS.
	Stream AnchorStreamConfig
	// Tenants, when set, limits the worker to these tenants: for tests
	// and benchmarks sharing a database, whose workers must not sign
	// each other's tenants. Default (nil) every tenant.
	Tenants []chartstream.TenantID
}

func (c *AnchorConfig) setDefaults() {
	if c.Name == "" {
		c.Name = DefaultAnchorName
	}
	if c.Interval == 0 {
		c.Interval = 5 * time.Second
	}
	if c.MaxPerRound == 0 {
		c.MaxPerRound = 200_000
	}
	if c.LeaseRetry == 0 {
		c.LeaseRetry = time.Second
	}
	c.Stream.setDefaults()
}

// Validate reports every problem with the configuration.
func (c AnchorConfig) Validate() error {
	var errs []error
	if c.Interval < 100*time.Millisecond {
		errs = append(errs, errors.New("anchor: interval must be at least 100ms"))
	}
	if c.MaxPerRound < 1 {
		errs = append(errs, errors.New("anchor: max events per round must be positive"))
	}
	return errors.Join(errs...)
}

// AnchorSource is what the anchor worker needs from the event store, on
// the relay role's pool: every tenant's event hashes in commit order, the
// checkpoint table, and each tenant's cursor codec (a checkpoint carries
// its last event's cursor sealed).
type AnchorSource interface {
	EventHashes(ctx context.Context, after eventstore.Cursor, limit int) ([]eventstore.EventHash, eventstore.Cursor, error)
	LatestCheckpoint(ctx context.Context, tenant chartstream.TenantID) (*eventstore.Checkpoint, error)
	SaveCheckpoints(ctx context.Context, cps []eventstore.Checkpoint) ([]eventstore.Checkpoint, error)
	CursorCodec(ctx context.Context, tenant chartstream.TenantID) (*eventstore.CursorCodec, error)
}

// AnchorDeps are the anchor worker's collaborators, all required.
type AnchorDeps struct {
	Events AnchorSource
	// DB is the relay role's pool, for the worker's cursor.
	DB *pgxpool.Pool
	// Sessions holds the lease (a session-mode pool).
	Sessions *pgxpool.Pool
	Stream   *AnchorStream
	// Signer signs checkpoints (CHECKPOINT_SIGNING_KEY_FILE); Keys
	// verify the checkpoints the worker resumes from.
	Signer audit.Signer
	Keys   audit.SignatureVerifier
	Logger *slog.Logger
}

// Anchor is the worker that signs checkpoints: every Interval, for each
// tenant with events committed since its last checkpoint, it extends the
// tenant's running hash (eventstore.Chain) with them, signs the result,
// stores it in audit_checkpoints and then publishes it on
// CLINICAL_ANCHORS. It reads in the gap-free order, so no event that
// commits late is ever left out of a chain. One is active across
// processes (a lease).
type Anchor struct {
	deps AnchorDeps
	cfg  AnchorConfig
}

// NewAnchor returns the worker. It panics on a missing dependency.
func NewAnchor(deps AnchorDeps, cfg AnchorConfig) (*Anchor, error) {
	if deps.Events == nil || deps.DB == nil || deps.Sessions == nil || deps.Stream == nil || deps.Signer == nil || deps.Keys == nil || deps.Logger == nil {
		panic("workers: NewAnchor with a nil dependency")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Anchor{deps: deps, cfg: cfg}, nil
}

// tenantAnchor is what the worker knows of a tenant's chain.
type tenantAnchor struct {
	chain   eventstore.Chain
	cursors *eventstore.CursorCodec
	// seq is the highest sequence number taken, valid or not.
	seq   int64
	dirty bool
	// stuck is a tenant whose checkpoints all fail to verify: the
	// worker will not vouch for its history again (see tenant).
	stuck bool
	// unpublished is the newest checkpoint not yet on the stream.
	unpublished *eventstore.Checkpoint
}

// Run anchors until ctx is done, while it holds the lease.
func (a *Anchor) Run(ctx context.Context) error {
	log := a.deps.Logger.With("worker", "anchor", "anchor", a.cfg.Name)
	lease{db: a.deps.Sessions, name: "anchor." + a.cfg.Name, retry: a.cfg.LeaseRetry, log: log}.run(ctx, func(ctx context.Context) error {
		if err := a.deps.Stream.ensure(ctx); err != nil {
			return err
		}
		r := &anchorRound{a: a, log: log, tenants: make(map[chartstream.TenantID]*tenantAnchor)}
		var err error
		if r.cursor, err = LoadCheckpoint(ctx, a.deps.DB, "anchor."+a.cfg.Name); err != nil {
			return err
		}
		for ctx.Err() == nil {
			more, err := r.run(ctx)
			if err != nil {
				return err // the lease starts over from the stored state
			}
			if !more {
				sleep(ctx, a.cfg.Interval)
			}
		}
		return nil
	})
	return nil
}

// anchorRound is the active worker's state between rounds.
type anchorRound struct {
	a       *Anchor
	log     *slog.Logger
	cursor  eventstore.Cursor
	tenants map[chartstream.TenantID]*tenantAnchor
}

// run reads what committed since the last round (up to MaxPerRound
// events), signs and stores a checkpoint for each tenant that has new
// events, publishes them, and moves the cursor. It reports whether more
// events are waiting.
func (r *anchorRound) run(ctx context.Context) (more bool, err error) {
	const page = 5000
	cursor, read := r.cursor, 0
	for read < r.a.cfg.MaxPerRound {
		hashes, next, err := r.a.deps.Events.EventHashes(ctx, cursor, min(page, r.a.cfg.MaxPerRound-read))
		if err != nil {
			return false, err
		}
		for _, h := range hashes {
			if len(r.a.cfg.Tenants) > 0 && !slices.Contains(r.a.cfg.Tenants, h.Tenant) {
				continue
			}
			t, err := r.tenant(ctx, h.Tenant)
			if err != nil {
				return false, err
			}
			if t.stuck || !h.Cursor.After(t.chain.Last) {
				continue // anchored already (the cursor was saved late)
			}
			t.chain.Add(h.Cursor, h.Hash)
			t.dirty = true
		}
		cursor, read = next, read+len(hashes)
		if len(hashes) < page {
			break
		}
	}
	if err := r.sign(ctx); err != nil {
		return false, err
	}
	r.publish(ctx)
	if cursor != r.cursor {
		if err := SaveCheckpoint(ctx, r.a.deps.DB, "anchor."+r.a.cfg.Name, cursor); err != nil {
			return false, err
		}
		r.cursor = cursor
	}
	return read >= r.a.cfg.MaxPerRound, nil
}

// tenant returns the tenant's chain, loading it the first time from the
// newest validly signed checkpoint, in the table or on the stream. It
// never starts over from the data when a checkpoint exists: a chain
// re-derived from tampered data would vouch for the tampering.
func (r *anchorRound) tenant(ctx context.Context, tenant chartstream.TenantID) (*tenantAnchor, error) {
	if t := r.tenants[tenant]; t != nil {
		return t, nil
	}
	t := &tenantAnchor{chain: eventstore.NewChain(tenant)}
	var err error
	if t.cursors, err = r.a.deps.Events.CursorCodec(ctx, tenant); err != nil {
		return nil, err
	}
	fromTable, err := r.a.deps.Events.LatestCheckpoint(ctx, tenant)
	if err != nil {
		return nil, err
	}
	fromStream, err := r.a.deps.Stream.Latest(ctx, tenant)
	if err != nil {
		return nil, err
	}
	var base *eventstore.Checkpoint
	for _, c := range []*eventstore.Checkpoint{fromTable, fromStream} {
		if c == nil {
			continue
		}
		t.seq = max(t.seq, c.Seq)
		// Where the chain resumes (Last) is kept open beside the signed
		// content, which holds it sealed: resumed from a Last the owner
		// moved, the worker would skip or repeat events and sign a chain
		// the data never had.
		if audit.CheckSignature(*c, r.a.deps.Keys) != nil || t.cursors.Seal(c.Last) != c.LastToken {
			r.log.Error("a checkpoint does not verify; resuming from another", "tenant", tenant.String(), "seq", c.Seq)
			continue
		}
		if base == nil || c.Seq > base.Seq {
			base = c
		}
	}
	switch {
	case base != nil:
		t.chain = base.Chain
		if fromStream == nil || fromStream.Seq < base.Seq {
			t.unpublished = base
		}
	case t.seq > 0:
		t.stuck = true
		r.log.Error("no checkpoint of the tenant verifies: it gets no more checkpoints until one does (chartstream verify names the bad ones)",
			"tenant", tenant.String())
	}
	r.tenants[tenant] = t
	return t, nil
}

// sign stores a signed checkpoint for every tenant with new events.
func (r *anchorRound) sign(ctx context.Context) error {
	var cps []eventstore.Checkpoint
	now := time.Now().UTC().Truncate(time.Microsecond)
	for tenant, t := range r.tenants {
		if !t.dirty {
			continue
		}
		c := eventstore.Checkpoint{Tenant: tenant, Seq: t.seq + 1, Chain: t.chain, LastToken: t.cursors.Seal(t.chain.Last), SignedAt: now}
		c.Hash = append(eventstore.Hash(nil), t.chain.Hash...)
		audit.Sign(&c, r.a.deps.Signer)
		cps = append(cps, c)
	}
	if len(cps) == 0 {
		return nil
	}
	taken, err := r.a.deps.Events.SaveCheckpoints(ctx, cps)
	if err != nil {
		return err
	}
	if len(taken) > 0 {
		// Another writer holds those numbers: never the case with one
		// active worker, unless rows were inserted behind its back.
		return fmt.Errorf("checkpoint %d of tenant %s exists already", taken[0].Seq, taken[0].Tenant)
	}
	for i := range cps {
		t := r.tenants[cps[i].Tenant]
		t.seq, t.dirty, t.unpublished = cps[i].Seq, false, &cps[i]
	}
	return nil
}

// publish puts each tenant's newest checkpoint on the stream. A failure
// is retried next round: the table has it, and the stream needs only the
// newest.
func (r *anchorRound) publish(ctx context.Context) {
	for _, t := range r.tenants {
		if t.unpublished == nil {
			continue
		}
		if err := r.a.deps.Stream.publish(ctx, *t.unpublished); err != nil {
			r.log.Warn("checkpoint not published; will retry", logging.Error(err))
			return
		}
		t.unpublished = nil
	}
}
