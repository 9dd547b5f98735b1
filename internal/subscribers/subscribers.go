// Package subscribers gives external consumers (analytics, research,
// quality reporting) access to one tenant's clinical stream, raw or
// de-identified, and takes it back: a durable JetStream consumer filtered
// to the tenant's subjects, NATS credentials that can read only that
// consumer (internal/natsauth), and a row in stream_subscribers saying who
// was given what.
package subscribers

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/natsauth"
	"github.com/chartstream/chartstream/internal/postgres"
)

// Issuer signs a consumer's NATS user (natsauth.Issuer).
type Issuer interface {
	Account() string
	Issue(u natsauth.ConsumerUser) (creds []byte, userKey string, err error)
}

// Revoker revokes a NATS user (natsauth.Revoker).
type Revoker interface {
	Revoke(ctx context.Context, account, userKey string) error
}

// Streams names the streams subscribers read and their subject prefixes.
type Streams struct {
	// Raw and RawPrefix are the relay's (default CLINICAL, clinical).
	Raw, RawPrefix string
	// Deid and DeidPrefix are the de-identifier's (default
	// CLINICAL_DEID, deid).
	Deid, DeidPrefix string
}

// Deps are the registry's collaborators, all required.
type Deps struct {
	// DB is the owner's pool (DATABASE_ADMIN_URL).
	DB *pgxpool.Pool
	// JetStream is the platform user's, to create and delete consumers.
	JetStream jetstream.JetStream
	Issuer    Issuer
	Revoker   Revoker
}

// Registry creates, lists and revokes subscribers.
type Registry struct {
	deps    Deps
	streams Streams
}

// New returns a registry. A nil dependency panics; an empty stream name
// is an error.
func New(deps Deps, streams Streams) (*Registry, error) {
	if deps.DB == nil || deps.JetStream == nil || deps.Issuer == nil || deps.Revoker == nil {
		panic("subscribers: New with a nil dependency")
	}
	if streams.Raw == "" || streams.RawPrefix == "" || streams.Deid == "" || streams.DeidPrefix == "" {
		return nil, errors.New("subscribers: every stream and subject prefix is required")
	}
	return &Registry{deps: deps, streams: streams}, nil
}

// Subscriber is one consumer's access to a tenant's stream.
type Subscriber struct {
	ID           uuid.UUID            `json:"id"`
	Tenant       chartstream.TenantID `json:"tenant_id"`
	Name         string               `json:"name"`
	Deidentified bool                 `json:"deidentified"`
	Stream       string               `json:"stream"`
	// Consumer is the durable consumer the subscriber binds to.
	Consumer string `json:"consumer"`
	// InboxPrefix is the inbox prefix its client must use.
	InboxPrefix string `json:"inbox_prefix"`
	// Subjects are the tenant's subjects the consumer delivers.
	Subjects  string     `json:"subjects"`
	UserKey   string     `json:"user_key"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// namePattern matches stream_subscribers_name_format (migration 0011).
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidateName returns EINVALID unless name is 1-63 lowercase letters,
// digits, dashes or underscores, starting with a letter or digit.
func ValidateName(name string) error {
	if !namePattern.MatchString(name) {
		return chartstream.Invalid(chartstream.FieldError{Field: "name", Reason: "must be 1-63 lowercase letters, digits, dashes or underscores, starting with a letter or digit"})
	}
	return nil
}

// Create gives name access to the tenant's stream (the de-identified one
// when deidentified) and returns the subscriber and its .creds file, which
// is never stored. EINVALID for a bad name, ECONFLICT when an active
// subscriber of the tenant has the name, ENOTFOUND for an unknown tenant.
func (r *Registry) Create(ctx context.Context, tenant chartstream.TenantID, name string, deidentified bool) (Subscriber, []byte, error) {
	if err := ValidateName(name); err != nil {
		return Subscriber{}, nil, err
	}
	id := uuid.New()
	s := Subscriber{ID: id, Tenant: tenant, Name: name, Deidentified: deidentified, Stream: r.streams.Raw,
		Consumer: "sub_" + strings.ReplaceAll(id.String(), "-", "")[:16]}
	s.Subjects = r.streams.RawPrefix + "." + tenant.String() + ".>"
	if deidentified {
		s.Stream, s.Subjects = r.streams.Deid, r.streams.DeidPrefix+"."+tenant.String()+".>"
	}
	s.InboxPrefix = natsauth.InboxPrefix(s.Consumer)
	creds, userKey, err := r.deps.Issuer.Issue(natsauth.ConsumerUser{Name: tenant.String() + "/" + name, Stream: s.Stream, Consumer: s.Consumer, InboxPrefix: s.InboxPrefix})
	if err != nil {
		return Subscriber{}, nil, err
	}
	s.UserKey = userKey
	err = postgres.InTenantTx(ctx, r.deps.DB, tenant, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO stream_subscribers (tenant_id, id, name, deidentified, stream, consumer, user_key)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at`, tenant, id, name, deidentified, s.Stream, s.Consumer, userKey).Scan(&s.CreatedAt); err != nil {
			return err
		}
		// Inside the transaction: a consumer that cannot be made leaves
		// no row. One made whose row then fails to commit is harmless:
		// nobody holds credentials for it.
		_, err := r.deps.JetStream.CreateConsumer(ctx, s.Stream, jetstream.ConsumerConfig{
			Durable: s.Consumer, Description: "chartstream subscriber " + name, FilterSubjects: []string{s.Subjects},
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxAckPending: 1000, MaxRequestBatch: 1000,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			Metadata:      map[string]string{"chartstream_tenant": tenant.String(), "chartstream_subscriber": id.String()},
		})
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return chartstream.Errorf(chartstream.EUNAVAILABLE, "stream %s does not exist yet: start the workers (chartstream work) first", s.Stream)
		}
		return err
	})
	switch {
	case postgres.IsConstraintError(err, postgres.UniqueViolation, "stream_subscribers_active_name"):
		return Subscriber{}, nil, chartstream.Errorf(chartstream.ECONFLICT, "the tenant has a subscriber named %s already", name)
	case postgres.IsConstraintError(err, postgres.ForeignKeyViolation, "stream_subscribers_tenant_id_fkey"):
		return Subscriber{}, nil, chartstream.Errorf(chartstream.ENOTFOUND, "unknown tenant")
	case err != nil:
		return Subscriber{}, nil, fmt.Errorf("create subscriber: %w", err)
	}
	return s, creds, nil
}

// List returns the tenant's subscribers, revoked ones too, oldest first.
func (r *Registry) List(ctx context.Context, tenant chartstream.TenantID) ([]Subscriber, error) {
	return List(ctx, r.deps.DB, r.streams, tenant)
}

// List is Registry.List for callers without NATS: db is the owner's pool.
func List(ctx context.Context, db *pgxpool.Pool, streams Streams, tenant chartstream.TenantID) ([]Subscriber, error) {
	var out []Subscriber
	err := postgres.InTenantTx(ctx, db, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+columns+` FROM stream_subscribers WHERE tenant_id = $1 ORDER BY created_at, id`, tenant)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanner(streams))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list subscribers: %w", err)
	}
	return out, nil
}

// Revoke takes access back from the tenant's active subscriber name: its
// consumer is deleted (so its credentials can read nothing from then on)
// and its NATS user revoked (so the servers close its connections).
// ENOTFOUND when the tenant has no active subscriber of that name.
func (r *Registry) Revoke(ctx context.Context, tenant chartstream.TenantID, name string) (Subscriber, error) {
	if err := ValidateName(name); err != nil {
		return Subscriber{}, err
	}
	var s Subscriber
	err := postgres.InTenantTx(ctx, r.deps.DB, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+columns+` FROM stream_subscribers
			WHERE tenant_id = $1 AND name = $2 AND revoked_at IS NULL FOR UPDATE`, tenant, name)
		if err != nil {
			return err
		}
		if s, err = pgx.CollectExactlyOneRow(rows, scanner(r.streams)); errors.Is(err, pgx.ErrNoRows) {
			return chartstream.Errorf(chartstream.ENOTFOUND, "the tenant has no active subscriber named %s", name)
		} else if err != nil {
			return err
		}
		if err := r.deps.JetStream.DeleteConsumer(ctx, s.Stream, s.Consumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("delete consumer: %w", err)
		}
		if err := r.deps.Revoker.Revoke(ctx, r.deps.Issuer.Account(), s.UserKey); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `UPDATE stream_subscribers SET revoked_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING revoked_at`,
			tenant, s.ID).Scan(&s.RevokedAt)
	})
	if err != nil {
		return Subscriber{}, fmt.Errorf("revoke subscriber: %w", err)
	}
	return s, nil
}

const columns = `id, tenant_id, name, deidentified, stream, consumer, user_key, created_at, revoked_at`

// scanner reads a row of columns.
func scanner(streams Streams) pgx.RowToFunc[Subscriber] {
	return func(row pgx.CollectableRow) (Subscriber, error) {
		var s Subscriber
		err := row.Scan(&s.ID, &s.Tenant, &s.Name, &s.Deidentified, &s.Stream, &s.Consumer, &s.UserKey, &s.CreatedAt, &s.RevokedAt)
		s.InboxPrefix = natsauth.InboxPrefix(s.Consumer)
		prefix := streams.RawPrefix
		if s.Deidentified {
			prefix = streams.DeidPrefix
		}
		s.Subjects = prefix + "." + s.Tenant.String() + ".>"
		return s, err
	}
}
