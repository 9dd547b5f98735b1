package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/eventstore/eventstoretest"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/signing"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/workers"
)

// auditFixture is a tenant with a few patients' histories, an anchor
// worker of its own (its name, stream and key) on a NATS server of the
// test's, and the database owner's rights to attack with.
type auditFixture struct {
	t            *testing.T
	tenant       chartstream.TenantID
	store, relay *eventstore.Store
	nats         *testkit.NATSServer
	js           jetstream.JetStream
	keyFile, pub string
	name, stream string
	patients     []chartstream.StreamRef
	events       [][]uuid.UUID // each patient's event ids by version - 1
}

func newAuditFixture(t *testing.T) *auditFixture {
	t.Helper()
	f := &auditFixture{t: t, tenant: testkit.MustTenant(t), nats: testkit.MustNATSServer(t)}
	keys, err := phi.OpenLocalKeyFile(testkit.Env(t, "PHI_KEY_FILE"))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := eventstore.NewRegistry(commands.EventSpecs())
	if err != nil {
		t.Fatal(err)
	}
	if f.store, err = eventstore.New(testkit.MustAppPool(t), reg, keys, eventstore.Config{}); err != nil {
		t.Fatal(err)
	}
	if f.relay, err = eventstore.New(testkit.MustPool(t, "DATABASE_RELAY_URL"), reg, keys, eventstore.Config{}); err != nil {
		t.Fatal(err)
	}
	if f.js, err = jetstream.New(f.nats.MustConnect(t)); err != nil {
		t.Fatal(err)
	}
	f.keyFile = filepath.Join(t.TempDir(), "checkpoint.pem")
	if _, err := signing.CreateKeyFiles(f.keyFile); err != nil {
		t.Fatal(err)
	}
	f.pub = f.keyFile + ".pub"
	id := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	f.name, f.stream = "test-"+id, "TEST_ANCHORS_"+strings.ToUpper(id)
	head, err := f.relay.Head(testkit.Context(t), eventstore.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := workers.SaveCheckpoint(testkit.Context(t), testkit.MustPool(t, "DATABASE_RELAY_URL"), "anchor."+f.name, head); err != nil {
		t.Fatal(err)
	}
	return f
}

// addPatient records a registration (with PHI) and n-1 observations.
func (f *auditFixture) addPatient(n int) int {
	f.t.Helper()
	p := patient.Stream(uuid.New())
	reg, _ := json.Marshal(map[string]any{"mrn": "MRN-" + uuid.NewString()[:8], "name": map[string]any{"family": "Lovelace", "given": []string{"Ada"}},
		"birth_date": "1990-01-02", "sex": "female"})
	events := []chartstream.NewEvent{{ID: uuid.New(), Type: patient.TypeRegistered, Payload: reg, Metadata: chartstream.Metadata{Actor: "dr-a"}}}
	for i := 1; i < n; i++ {
		obs, _ := json.Marshal(map[string]any{"observation_id": uuid.New(), "code": "8867-4", "system": patient.LOINC, "value": 60 + i,
			"unit": "/min", "effective_at": time.Now().UTC().Format(time.RFC3339)})
		events = append(events, chartstream.NewEvent{ID: uuid.New(), Type: patient.TypeObservationRecorded, Payload: obs, Metadata: chartstream.Metadata{Actor: "nurse-b"}})
	}
	if _, err := f.store.Append(testkit.Context(f.t), f.tenant, p, chartstream.NoStream, events...); err != nil {
		f.t.Fatal(err)
	}
	ids := make([]uuid.UUID, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	f.patients, f.events = append(f.patients, p), append(f.events, ids)
	// Exports and verification read below the gap-free horizon, which a
	// parallel test's open transaction may hold behind these events.
	eventstoretest.ReadCommitted(f.t, testkit.Context(f.t), f.store, f.tenant)
	return len(f.patients) - 1
}

// total is how many events the fixture recorded.
func (f *auditFixture) total() int64 {
	var n int64
	for _, ids := range f.events {
		n += int64(len(ids))
	}
	return n
}

// anchor runs the fixture's anchor worker until a checkpoint covers every
// event recorded so far, then stops it, and returns the checkpoint.
func (f *auditFixture) anchor() eventstore.Checkpoint {
	f.t.Helper()
	signer, err := signing.LoadSigner(f.keyFile)
	if err != nil {
		f.t.Fatal(err)
	}
	a, err := workers.NewAnchor(workers.AnchorDeps{Events: f.relay, DB: testkit.MustPool(f.t, "DATABASE_RELAY_URL"), Sessions: testkit.MustAppPool(f.t),
		Stream: workers.NewAnchorStream(f.js, workers.AnchorStreamConfig{Stream: f.stream}),
		Signer: signer, Keys: signer.Public(), Logger: logging.New(f.t.Output(), 0)},
		workers.AnchorConfig{Name: f.name, Interval: 100 * time.Millisecond, Tenants: []chartstream.TenantID{f.tenant}})
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testkit.Context(f.t))
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := f.store.LatestCheckpoint(ctx, f.tenant)
		if err != nil {
			f.t.Fatal(err)
		}
		if c != nil && c.Events == f.total() {
			latest, err := workers.NewAnchorStream(f.js, workers.AnchorStreamConfig{Stream: f.stream}).Latest(ctx, f.tenant)
			if err == nil && latest != nil && latest.Seq == c.Seq {
				return *c
			}
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("no checkpoint of %d events within 20s (latest %+v)", f.total(), c)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// verify runs chartstream verify on the fixture's tenant.
func (f *auditFixture) verify(extra ...string) (string, error) {
	f.t.Helper()
	return execute(testkit.Context(f.t), append([]string{"verify", "--tenant", f.tenant.String(), "--nats-url", f.nats.URL(),
		"--anchor-stream", f.stream, "--public-key", f.pub, "--database-url", testkit.Env(f.t, "DATABASE_URL")}, extra...)...)
}

// owner runs statements as the database owner, in one transaction with
// the tenant set. Disabling a trigger locks its table until the commit.
func (f *auditFixture) owner(statements ...string) {
	f.t.Helper()
	ctx := testkit.Context(f.t)
	err := postgres.InTenantTx(ctx, testkit.MustAdminPool(f.t), f.tenant, func(tx pgx.Tx) error {
		for _, sql := range statements {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.t.Fatalf("as the owner: %v", err)
	}
}
