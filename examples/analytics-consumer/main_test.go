package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/deid"
	"github.com/chartstream/chartstream/internal/natsauth"
	"github.com/chartstream/chartstream/internal/signing"
	"github.com/chartstream/chartstream/internal/subscribers"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/workers"
)

// The example end to end: events committed for two tenants go through the
// relay and the de-identifier on an operator-mode nats-server set up as
// the local stack's; tenant A's subscriber credentials, issued as
// `chartstream subscriber create --deidentified` issues them, count A's
// de-identified events and nothing of B's.
func TestConsumerCountsItsTenantsDeidentifiedEvents(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	srv := testkit.MustOperatorNATS(t)
	js, err := jetstream.New(srv.MustConnectAs(t, srv.File(natsauth.PlatformCredsFile)))
	if err != nil {
		t.Fatal(err)
	}
	writer, reader := mustStores(t)
	a, b := testkit.MustTenant(t), testkit.MustTenant(t)
	id := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	relayCfg := workers.RelayConfig{Name: "example-" + id, MaxBytes: 8 << 20}
	head, err := reader.Head(ctx, eventstore.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := workers.SaveCheckpoint(ctx, testkit.MustPool(t, "DATABASE_RELAY_URL"), relayCfg.Name, head); err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer := signing.NewSigner(key)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	relay, err := workers.NewRelay(workers.RelayDeps{Events: reader, DB: testkit.MustPool(t, "DATABASE_RELAY_URL"), JetStream: js, Signer: signer, Logger: quiet}, relayCfg)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := deid.New(commands.EventSpecs(), deid.Config{})
	if err != nil {
		t.Fatal(err)
	}
	deidentifier, err := workers.NewDeidentifier(workers.DeidentifierDeps{JetStream: js, Sessions: testkit.MustAppPool(t), Events: writer, Rules: rules,
		Verifier: signer.Public(), Signer: signer, Logger: quiet},
		workers.DeidentifierConfig{Name: "example-" + id, MaxBytes: 8 << 20, Tenants: []chartstream.TenantID{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range []func(context.Context) error{relay.Run, deidentifier.Run} {
		runCtx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = run(runCtx) }()
		t.Cleanup(func() { cancel(); <-done })
	}

	cmds := commands.New(writer, nil)
	register := func(tenant chartstream.TenantID, mrn string) uuid.UUID {
		res, err := cmds.Run(ctx, tenant, chartstream.Metadata{Actor: "test"}, patient.RegisterPatient{MRN: mrn,
			Name: patient.HumanName{Family: "Example"}, BirthDate: "1980-01-01", Sex: patient.SexOther})
		if err != nil {
			t.Fatal(err)
		}
		return res.ID
	}
	p := register(a, "A-1")
	register(a, "A-2")
	register(b, "B-1")
	if _, err := cmds.Run(ctx, a, chartstream.Metadata{Actor: "test"}, patient.RecordObservation{PatientID: p, Code: "8867-4", System: patient.LOINC,
		Value: new(float64), Unit: "/min", EffectiveAt: time.Now().UTC().Format(time.RFC3339)}); err != nil {
		t.Fatal(err)
	}

	// The subscriber, once the de-identifier published all four events.
	var registry *subscribers.Registry
	deadline := time.Now().Add(15 * time.Second)
	for {
		if s, err := js.Stream(ctx, workers.DefaultDeidStream); err == nil {
			if info, err := s.Info(ctx); err == nil && info.State.Msgs >= 4 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the de-identified stream did not get the four events")
		}
		time.Sleep(50 * time.Millisecond)
	}
	issuer, err := natsauth.LoadIssuer(srv.File(natsauth.AccountSigningKeyFile), srv.File(natsauth.PlatformCredsFile))
	if err != nil {
		t.Fatal(err)
	}
	if registry, err = subscribers.New(subscribers.Deps{DB: testkit.MustAdminPool(t), JetStream: js, Issuer: issuer, Revoker: nopRevoker{}},
		subscribers.Streams{Raw: workers.DefaultStream, RawPrefix: workers.DefaultSubjectPrefix, Deid: workers.DefaultDeidStream, DeidPrefix: workers.DefaultDeidSubjectPrefix}); err != nil {
		t.Fatal(err)
	}
	sub, creds, err := registry.Create(ctx, a, "example", true)
	if err != nil {
		t.Fatal(err)
	}
	credsFile := filepath.Join(t.TempDir(), "example.creds")
	if err := os.WriteFile(credsFile, creds, 0o600); err != nil {
		t.Fatal(err)
	}

	// B's event is in the stream already: the consumer runs for a second
	// after it has counted A's three, so B's would have come too.
	out := &testkit.Buffer{}
	runCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, config{URL: srv.URL(), Creds: credsFile, Stream: sub.Stream, Consumer: sub.Consumer, Every: 100 * time.Millisecond}, out)
	}()
	for !strings.Contains(out.String(), " total=3 ") && runCtx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; !strings.HasSuffix(last, " total=3 patient.observation_recorded=1 patient.registered=2") {
		t.Errorf("counts %q, want tenant A's 3 events and none of B's", out.String())
	}
}

type nopRevoker struct{}

func (nopRevoker) Revoke(context.Context, string, string) error { return nil }

// mustStores returns the event store as the app role (writer, opener) and
// as the relay role (reader), with a PHI key of the test's own.
func mustStores(t *testing.T) (writer, reader *eventstore.Store) {
	t.Helper()
	keys := testkit.MustPHIKeys(t)
	specs := commands.EventSpecs()
	return testkit.MustEventStore(t, testkit.MustAppPool(t), specs, keys), testkit.MustEventStore(t, testkit.MustPool(t, "DATABASE_RELAY_URL"), specs, keys)
}
