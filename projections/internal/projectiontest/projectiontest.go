// Package projectiontest is what the read models' integration tests share:
// events recorded with the real event store (PHI sealed, then opened on
// read) and applied to a projector as the runner would, in public or in the
// rebuild twins, as the app role.
package projectiontest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/projections"
)

// Projector is what the tests need of a read model's projector.
type Projector interface {
	Name() string
	Apply(ctx context.Context, tx pgx.Tx, e chartstream.Event) error
	Tables() []string
}

// Payload is a domain event payload (patient.PatientRegistered, ...).
type Payload interface{ EventType() string }

// Schemas where read model tables live: the live ones and the twins a
// rebuild fills.
const (
	Public  = "public"
	Rebuild = "rebuild"
)

// Env is one test's event store on the app role's pool.
type Env struct {
	Ctx   context.Context
	Pool  *pgxpool.Pool
	Store *eventstore.Store
}

// MustEnv returns an event store with every clinical event type and a local
// PHI key made for this test.
func MustEnv(tb testing.TB) *Env {
	tb.Helper()
	keyFile := filepath.Join(tb.TempDir(), "phi.key")
	if _, err := phi.CreateLocalKeyFile(keyFile); err != nil {
		tb.Fatal(err)
	}
	keys, err := phi.OpenLocalKeyFile(keyFile)
	if err != nil {
		tb.Fatal(err)
	}
	reg, err := eventstore.NewRegistry(commands.EventSpecs())
	if err != nil {
		tb.Fatal(err)
	}
	pool := testkit.MustAppPool(tb)
	store, err := eventstore.New(pool, reg, keys, eventstore.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	return &Env{Ctx: testkit.Context(tb), Pool: pool, Store: store}
}

// Append records payloads on stream, with their unique claims, and returns
// them as read back: opened, PHI in the payload.
func (env *Env) Append(tb testing.TB, tenant chartstream.TenantID, stream chartstream.StreamRef, payloads ...Payload) []chartstream.Event {
	tb.Helper()
	events := make([]chartstream.NewEvent, len(payloads))
	for i, p := range payloads {
		body, err := json.Marshal(p)
		if err != nil {
			tb.Fatal(err)
		}
		events[i] = chartstream.NewEvent{Type: p.EventType(), Payload: body, Metadata: chartstream.Metadata{Actor: "test"}}
		if c, ok := p.(interface {
			Claims() []chartstream.UniqueClaim
		}); ok {
			events[i].Claims = c.Claims()
		}
	}
	res, err := env.Store.Append(env.Ctx, tenant, stream, chartstream.AnyVersion, events...)
	if err != nil {
		tb.Fatalf("append %d events to %s: %v", len(events), stream.Type, err)
	}
	return env.Read(tb, tenant, stream, res.Version-int64(len(events))+1)
}

// Read returns a stream's events from a version on, opened.
func (env *Env) Read(tb testing.TB, tenant chartstream.TenantID, stream chartstream.StreamRef, from int64) []chartstream.Event {
	tb.Helper()
	read, err := env.Store.ReadStream(env.Ctx, tenant, stream, from)
	if err != nil {
		tb.Fatal(err)
	}
	return read
}

// Apply applies each event in its own tenant transaction, as the runner
// does, into the tables of schema.
func (env *Env) Apply(tb testing.TB, p Projector, schema string, events ...chartstream.Event) {
	tb.Helper()
	for _, e := range events {
		err := env.InSchema(e.Tenant, schema, func(tx pgx.Tx) error { return p.Apply(env.Ctx, tx, e) })
		if err != nil {
			tb.Fatalf("%s: apply %s: %v", p.Name(), e.Type, err)
		}
	}
}

// InSchema runs fn in a tenant transaction whose unqualified table names
// resolve to schema, the way a rebuild runs.
func (env *Env) InSchema(tenant chartstream.TenantID, schema string, fn func(pgx.Tx) error) error {
	return postgres.InTenantTx(env.Ctx, env.Pool, tenant, func(tx pgx.Tx) error {
		if _, err := tx.Exec(env.Ctx, "SELECT set_config('search_path', $1 || ', public', true)", schema); err != nil {
			return err
		}
		return fn(tx)
	})
}

// Dump returns the tenant's rows of each of p's tables in schema, as JSON
// in a stable order, to compare read models.
func (env *Env) Dump(tb testing.TB, p Projector, tenant chartstream.TenantID, schema string) map[string]string {
	tb.Helper()
	dump := map[string]string{}
	err := env.InSchema(tenant, schema, func(tx pgx.Tx) error {
		for _, table := range p.Tables() {
			var rows string
			err := tx.QueryRow(env.Ctx, fmt.Sprintf(`SELECT coalesce(json_agg(t ORDER BY t::text), '[]')::text
				FROM %s t WHERE tenant_id = $1`, pgx.Identifier{table}.Sanitize()), tenant).Scan(&rows)
			if err != nil {
				return fmt.Errorf("dump %s: %w", table, err)
			}
			dump[table] = rows
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return dump
}

// CheckRowsStayInTenant writes, in tenant a's transaction, a copy of one of
// a's rows of each of p's tables (and of projection_checkpoints) relabelled
// as tenant b's, and fails unless row-level security refuses each write
// (SQLSTATE 42501). Every table must hold a row of a's.
func (env *Env) CheckRowsStayInTenant(tb testing.TB, p Projector, a, b chartstream.TenantID, schema string) {
	tb.Helper()
	err := env.InSchema(a, schema, func(tx pgx.Tx) error {
		_, err := tx.Exec(env.Ctx, `INSERT INTO projection_checkpoints (tenant_id, projection, txid, position)
			VALUES ($1, $2, 1, 1) ON CONFLICT DO NOTHING`, a, p.Name())
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	for _, table := range append(p.Tables(), "projection_checkpoints") {
		t := pgx.Identifier{table}.Sanitize()
		err := env.InSchema(a, schema, func(tx pgx.Tx) error {
			tag, err := tx.Exec(env.Ctx, fmt.Sprintf(`INSERT INTO %[1]s
				SELECT (jsonb_populate_record(null::%[1]s, to_jsonb(r) || jsonb_build_object('tenant_id', $2::uuid))).*
				FROM %[1]s r WHERE tenant_id = $1 LIMIT 1`, t), a, b)
			if err == nil && tag.RowsAffected() == 0 {
				return errors.New("tenant A has no row to copy; the test is wrong")
			}
			return err
		})
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != postgres.InsufficientPrivilege {
			tb.Errorf("%s.%s: writing tenant B's row in tenant A's transaction: got %v, want SQLSTATE %s",
				schema, table, err, postgres.InsufficientPrivilege)
		}
	}
}

// ApplyAndCheck applies events to p's tables in public as a redelivering
// runner would — each event twice in a row, then the whole sequence again —
// and in the rebuild twins once, and fails unless both hold the same rows:
// Apply is idempotent and its SQL lands in the twins under the rebuild
// search_path. It then checks that neither schema takes a row for tenant
// other in tenant's transaction. events must all be tenant's.
func (env *Env) ApplyAndCheck(tb testing.TB, p Projector, tenant, other chartstream.TenantID, events ...chartstream.Event) {
	tb.Helper()
	for _, e := range events {
		env.Apply(tb, p, Public, e, e)
	}
	once := env.Dump(tb, p, tenant, Public)
	env.Apply(tb, p, Public, events...)
	if again := env.Dump(tb, p, tenant, Public); !maps.Equal(once, again) {
		tb.Errorf("%s: applying the events again changed the read model:\nonce  %v\nagain %v", p.Name(), once, again)
	}
	env.Apply(tb, p, Rebuild, events...)
	if twin := env.Dump(tb, p, tenant, Rebuild); !maps.Equal(once, twin) {
		tb.Errorf("%s: the rebuild twins differ from public:\npublic  %v\nrebuild %v", p.Name(), once, twin)
	}
	env.CheckRowsStayInTenant(tb, p, tenant, other, Public)
	env.CheckRowsStayInTenant(tb, p, tenant, other, Rebuild)
}

// AllPages follows a listing's cursors from the first page to the last and
// returns every item in order. list returns the page after cursor.
func AllPages[T any](tb testing.TB, list func(cursor string) (projections.Page[T], error)) []T {
	tb.Helper()
	var all []T
	cursor := ""
	for {
		page, err := list(cursor)
		if err != nil {
			tb.Fatal(err)
		}
		all = append(all, page.Items...)
		if page.Next == "" {
			return all
		}
		cursor = page.Next
	}
}
