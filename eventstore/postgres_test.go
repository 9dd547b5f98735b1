package eventstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/eventstore/eventstoretest"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
)

// The tests here need the database itself: its roles, triggers and rows.

// mustAppendIDs appends events of type test.happened to a new stream and
// returns the stream and the events' ids.
func mustAppendIDs(t *testing.T, s *eventstore.Store, tenant chartstream.TenantID, n int) (chartstream.StreamRef, []uuid.UUID) {
	t.Helper()
	st := stream()
	events := make([]chartstream.NewEvent, n)
	ids := make([]uuid.UUID, n)
	for i := range events {
		events[i] = newEvent("test.happened", map[string]any{"n": i + 1})
		events[i].ID = uuid.New()
		ids[i] = events[i].ID
	}
	if _, err := s.Append(testkit.Context(t), tenant, st, chartstream.NoStream, events...); err != nil {
		t.Fatal(err)
	}
	return st, ids
}

// ownerTx runs fn in a transaction of the owner role with the tenant set,
// as only a test may, and rolls it back unless commit is true. Lock waits
// are bounded: the owner's statements here lock the whole events table.
func ownerTx(t *testing.T, tenant chartstream.TenantID, commit bool, fn func(ctx context.Context, tx pgx.Tx) error) error {
	t.Helper()
	ctx := testkit.Context(t)
	tx, err := testkit.MustAdminPool(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after commit
	if _, err := tx.Exec(ctx, `SELECT set_config('app.tenant_id', $1, true), set_config('lock_timeout', '10s', true)`, tenant.String()); err != nil {
		t.Fatal(err)
	}
	if err := fn(ctx, tx); err != nil || !commit {
		return err
	}
	return tx.Commit(ctx)
}

// TestEventsImmutable runs before the parallel tests (it is not parallel):
// TRUNCATE as the owner waits for every transaction touching events.
func TestEventsImmutable(t *testing.T) {
	s := MustStore(t, eventstore.Config{})
	tenant := testkit.MustTenant(t)
	st, ids := mustAppendIDs(t, s, tenant, 2)
	statements := []string{
		`UPDATE events SET payload = '{"n": 0}' WHERE tenant_id = '` + tenant.String() + `'`,
		`DELETE FROM events WHERE tenant_id = '` + tenant.String() + `'`,
		`TRUNCATE events`,
	}
	for _, sql := range statements {
		// The app role may not; its transaction is rolled back regardless.
		err := postgres.InTenantTx(testkit.Context(t), testkit.MustAppPool(t), tenant, func(tx pgx.Tx) error {
			if _, err := tx.Exec(testkit.Context(t), sql); err != nil {
				return err
			}
			return errRollback
		})
		if !postgres.IsConstraintError(err, postgres.InsufficientPrivilege, "") {
			t.Errorf("app role %s: %v, want SQLSTATE 42501", strings.Fields(sql)[0], err)
		}
		// Neither may the owner, who sees the rows; never committed.
		err = ownerTx(t, tenant, false, func(ctx context.Context, tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, sql)
			if err == nil && tag.RowsAffected() == 0 && !strings.HasPrefix(sql, "TRUNCATE") {
				t.Errorf("the owner's %s saw no rows: the test proves nothing", tag)
			}
			return err
		})
		if !postgres.IsConstraintError(err, postgres.InsufficientPrivilege, "") {
			t.Errorf("owner %s: %v, want SQLSTATE 42501", strings.Fields(sql)[0], err)
		}
	}
	events, err := s.ReadStream(testkit.Context(t), tenant, st, 1)
	if err != nil || len(events) != 2 || events[1].ID != ids[1] || eventstoretest.Payload(t, events[0])["n"] != float64(1) {
		t.Fatalf("after the refused statements: %+v, %v", events, err)
	}
}

// errRollback makes InTenantTx roll back.
var errRollback = chartstream.Errorf(chartstream.EINTERNAL, "rollback")

// TestTamperEvidence changes stored events the only way left — the owner
// disabling the immutability trigger — and checks that Verify names the
// altered event. Not parallel: disabling a trigger locks the table.
func TestTamperEvidence(t *testing.T) {
	ctx := testkit.Context(t)
	s := MustStore(t, eventstore.Config{})
	tamper := func(t *testing.T, tenant chartstream.TenantID, set string, id uuid.UUID) {
		t.Helper()
		err := ownerTx(t, tenant, true, func(ctx context.Context, tx pgx.Tx) error {
			for _, sql := range []string{
				`ALTER TABLE events DISABLE TRIGGER events_no_update_delete`,
				`UPDATE events SET ` + set + ` WHERE event_id = '` + id.String() + `'`,
				`ALTER TABLE events ENABLE TRIGGER events_no_update_delete`,
			} {
				if tag, err := tx.Exec(ctx, sql); err != nil {
					return err
				} else if tag.Update() && tag.RowsAffected() != 1 {
					t.Fatalf("%s changed %d rows", sql, tag.RowsAffected())
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name, set string
		version   int64
		reason    string
	}{
		{"payload", `payload = '{"n": 20}'`, 2, "hash mismatch"},
		{"metadata", `metadata = '{"actor": "someone else"}'`, 2, "hash mismatch"},
		{"forged link", `prev_hash = sha256('forged')`, 2, "broken link"},
		// A careful forger recomputes the event's own hash; its successor
		// then no longer links to it.
		{"recomputed hash", `payload = '{"n": 20}', hash = chartstream_event_hash(prev_hash, tenant_id, stream_type, stream_id,
			version, event_id, event_type, schema_version, '{"n": 20}', phi, subject_id, metadata, recorded_at)`, 3, "broken link"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tenant := testkit.MustTenant(t)
			mustAppendIDs(t, s, tenant, 2) // an intact stream before it
			st, ids := mustAppendIDs(t, s, tenant, 3)
			tamper(t, tenant, tc.set, ids[1])
			report, err := s.Verify(ctx, tenant, eventstore.VerifyParams{})
			if err != nil {
				t.Fatal(err)
			}
			want := eventstore.BrokenEvent{Stream: st, Version: tc.version, EventID: ids[tc.version-1], Reason: tc.reason}
			if len(report.Broken) != 1 || report.Broken[0] != want {
				t.Fatalf("verify reported %+v, want %+v", report.Broken, want)
			}
		})
	}
}

// TestRelayRole checks the relay's narrow grant: it reads every tenant's
// events and writes none.
func TestRelayRole(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	s := MustStore(t, eventstore.Config{})
	relay := mustStoreOn(t, "DATABASE_RELAY_URL", eventstore.Config{}, eventstoretest.Specs())
	a, b := testkit.MustTenant(t), testkit.MustTenant(t)
	// Start at the head, then page until both tenants' events went by;
	// other tests' events are interleaved.
	cursor, err := relay.Head(ctx, eventstore.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	_, idsA := mustAppendIDs(t, s, a, 2)
	_, idsB := mustAppendIDs(t, s, b, 1)
	seen := make(map[uuid.UUID]chartstream.TenantID)
	deadline := time.Now().Add(20 * time.Second)
	for len(seen) < 3 {
		page, next, err := relay.ReadAll(ctx, eventstore.Filter{}, cursor, 500)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			if e.Tenant == a || e.Tenant == b {
				seen[e.ID] = e.Tenant
			}
		}
		cursor = next
		if len(page) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the relay saw %d of 3 events before the deadline", len(seen))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if seen[idsA[0]] != a || seen[idsA[1]] != a || seen[idsB[0]] != b {
		t.Errorf("the relay saw %v", seen)
	}

	// It cannot write: not through the store, not with its own INSERT.
	_, err = relay.Append(ctx, a, stream(), chartstream.NoStream, newEvent("test.happened", map[string]any{}))
	if !postgres.IsConstraintError(err, postgres.InsufficientPrivilege, "") {
		t.Errorf("relay Append: %v, want SQLSTATE 42501", err)
	}
	err = postgres.InTenantTx(ctx, testkit.MustPool(t, "DATABASE_RELAY_URL"), a, func(tx pgx.Tx) error {
		_, err := insertRaw(t, ctx, tx, a, stream(), 1)
		return err
	})
	if !postgres.IsConstraintError(err, postgres.InsufficientPrivilege, "") {
		t.Errorf("relay INSERT: %v, want SQLSTATE 42501", err)
	}
}

// TestPHIAtRest reads the stored row as the app role: the payload has no
// PHI field and the sealed column does not contain the plaintext.
func TestPHIAtRest(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	s := MustStore(t, eventstore.Config{})
	tenant, st := testkit.MustTenant(t), stream()
	e := newEvent("test.noted", map[string]any{"n": 1, "name": "Ada Lovelace", "note": "allergic to penicillin"})
	e.ID = uuid.New()
	if _, err := s.Append(ctx, tenant, st, chartstream.NoStream, e); err != nil {
		t.Fatal(err)
	}
	payload, sealed, subject := storedRow(t, testkit.MustAppPool(t), tenant, e.ID)
	for _, secret := range []string{"name", "note", "Ada Lovelace", "penicillin"} {
		if strings.Contains(payload, secret) {
			t.Errorf("the stored payload %s contains %q", payload, secret)
		}
		if bytes.Contains(sealed, []byte(secret)) {
			t.Errorf("the stored ciphertext contains %q", secret)
		}
	}
	if !strings.Contains(payload, `"n": 1`) || len(sealed) == 0 || subject != st.ID {
		t.Errorf("stored payload %s, %d sealed bytes, subject %s", payload, len(sealed), subject)
	}
	events, err := s.ReadStream(ctx, tenant, st, 1)
	if err != nil || len(events) != 1 || eventstoretest.Payload(t, events[0])["name"] != "Ada Lovelace" {
		t.Fatalf("ReadStream: %+v, %v", events, err)
	}
}

func storedRow(t *testing.T, pool *pgxpool.Pool, tenant chartstream.TenantID, id uuid.UUID) (payload string, sealed []byte, subject uuid.UUID) {
	t.Helper()
	err := postgres.InTenantTx(testkit.Context(t), pool, tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(testkit.Context(t), `SELECT payload::text, phi, subject_id FROM events WHERE event_id = $1`, id).
			Scan(&payload, &sealed, &subject)
	})
	if err != nil {
		t.Fatal(err)
	}
	return payload, sealed, subject
}

// A unique value (an MRN) is stored as an HMAC under the tenant's own key,
// which the database holds only wrapped: someone reading the table with the
// owner's rights cannot find an MRN by hashing every candidate, and the
// same MRN in two tenants cannot be linked. Shredding the subject releases
// the claim, so nothing links the erased record back to its MRN.
func TestUniqueClaimsAreKeyedAndReleasedOnShred(t *testing.T) {
	t.Parallel()
	s := MustStore(t, eventstore.Config{})
	ctx := testkit.Context(t)
	a, b := testkit.MustTenant(t), testkit.MustTenant(t)
	const mrn = "12345678"
	claim := chartstream.UniqueClaim{Scope: "patient.mrn", Value: mrn}
	var subject chartstream.StreamRef
	for _, tenant := range []chartstream.TenantID{a, b} {
		st := stream()
		ev := newEvent("test.happened", map[string]any{})
		ev.Claims = []chartstream.UniqueClaim{claim}
		if _, err := s.Append(ctx, tenant, st, chartstream.NoStream, ev); err != nil {
			t.Fatal(err)
		}
		if tenant == a {
			subject = st
		}
	}
	unkeyed := sha256.Sum256([]byte("patient.mrn\x00" + mrn))
	hashes := map[chartstream.TenantID][]byte{}
	for _, tenant := range []chartstream.TenantID{a, b} {
		err := ownerTx(t, tenant, false, func(ctx context.Context, tx pgx.Tx) error {
			var h []byte
			err := tx.QueryRow(ctx, `SELECT value_hash FROM unique_claims WHERE tenant_id = $1`, tenant).Scan(&h)
			hashes[tenant] = h
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(hashes[tenant], unkeyed[:]) {
			t.Errorf("the MRN's claim is its unkeyed SHA-256")
		}
	}
	if bytes.Equal(hashes[a], hashes[b]) {
		t.Error("the same MRN has the same hash in two tenants")
	}
	if err := s.ShredSubject(ctx, a, subject.ID); err != nil {
		t.Fatal(err)
	}
	err := ownerTx(t, a, false, func(ctx context.Context, tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM unique_claims WHERE tenant_id = $1`, a).Scan(&n); err != nil {
			return err
		}
		if n != 0 {
			t.Errorf("%d claims of the shredded subject remain", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
