package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/eventstore/eventstoretest"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/workers"
)

// relay verify against the real PostgreSQL (DATABASE_RELAY_URL and
// DATABASE_URL from the environment) and a NATS server of the test's own;
// flags, not the environment, point it there, so the tests run in parallel.

// exitCode is the status main would exit with for err.
func exitCode(err error) int {
	var ex exitError
	if errors.As(err, &ex) {
		return ex.code
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestRelayVerifyCLIRefusesBadInput(t *testing.T) {
	t.Parallel()
	natsURL := testkit.MustNATSServer(t).URL()
	tenant := testkit.MustTenant(t).String()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"malformed tenant", []string{"--tenant", "st-mary", "--nats-url", natsURL}, "--tenant must be a tenant id (UUID)"},
		{"unknown tenant", []string{"--tenant", uuid.NewString(), "--nats-url", natsURL}, "no tenant "},
		{"no NATS_URL", []string{"--tenant", tenant, "--nats-url", ""}, "NATS_URL is required"},
		{"NATS unreachable", []string{"--tenant", tenant, "--nats-url", "nats://127.0.0.1:1"}, "connect to NATS"},
		{"stream missing", []string{"--tenant", tenant, "--nats-url", natsURL, "--relay-stream", "NO_SUCH_STREAM"}, "no stream NO_SUCH_STREAM"},
		{"unknown flag", []string{"--tenat", tenant}, "unknown flag: --tenat"},
		{"an argument", []string{tenant}, "takes no arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := execute(testkit.Context(t), append([]string{"relay", "verify"}, tc.args...)...)
			if code := exitCode(err); code != 2 || !strings.Contains(oneLine(err), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("exit %d, error %q; want exit 2 and one line containing %q", code, err, tc.want)
			}
			if out != "" {
				t.Errorf("printed %q, want nothing on stdout", out)
			}
		})
	}
}

func TestRelayVerifyCLIReports(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	srv := testkit.MustNATSServer(t)
	js, err := jetstream.New(srv.MustConnect(t))
	if err != nil {
		t.Fatal(err)
	}
	stream := "TEST_" + strings.ToUpper(uuid.NewString()[:8])
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{workers.DefaultSubjectPrefix + ".>"}, MaxBytes: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	tenant := testkit.MustTenant(t)
	verify := func(extra ...string) (string, error) {
		return execute(ctx, append([]string{"relay", "verify", "--tenant", tenant.String(), "--nats-url", srv.URL(), "--relay-stream", stream}, extra...)...)
	}

	if out, err := verify(); exitCode(err) != 0 || !strings.HasPrefix(out, "OK: 0 events in the store, 0 messages in stream "+stream) {
		t.Fatalf("nothing stored: exit %d (%v), printed %q; want exit 0 and OK", exitCode(err), err, out)
	}

	// A committed event the relay never published.
	store, err := newStore(testkit.MustAppPool(t), stackKeys(t), commands.EventSpecs(), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = commands.New(store, nil).Run(ctx, tenant, chartstream.Metadata{Actor: "dr-relay"}, patient.RegisterPatient{
		MRN: "RELAY-1", Name: patient.HumanName{Family: "Lovelace"}, BirthDate: "1990-01-02", Sex: "female"})
	if err != nil {
		t.Fatal(err)
	}
	events := eventstoretest.ReadCommitted(t, ctx, store, tenant)
	if len(events) != 1 {
		t.Fatalf("stored %d events, want 1", len(events))
	}
	id := events[0].ID.String()

	out, err := verify()
	if exitCode(err) != 1 || !strings.Contains(out, "missing (in the store, not in the stream): 1, e.g. "+id+"\n") {
		t.Errorf("unpublished event: exit %d (%v), printed %q; want exit 1 naming %s missing", exitCode(err), err, out, id)
	}
	if strings.Contains(out, "Lovelace") || strings.Contains(out, "RELAY-1") {
		t.Errorf("the report shows PHI: %q", out)
	}
	out, err = verify("--json")
	var report struct {
		OK      bool `json:"ok"`
		Missing struct {
			Count    int      `json:"count"`
			Examples []string `json:"examples"`
		} `json:"missing"`
	}
	if jerr := json.Unmarshal([]byte(out), &report); jerr != nil || exitCode(err) != 1 || strings.Count(out, "\n") != 1 ||
		report.OK || report.Missing.Count != 1 || len(report.Missing.Examples) != 1 || report.Missing.Examples[0] != id {
		t.Errorf("--json: exit %d (%v), printed %q; want exit 1 and one JSON object with missing {1, [%s]}", exitCode(err), err, out, id)
	}

	// Published as the relay would: the stream matches again.
	msg, err := workers.EncodeMessage(workers.DefaultSubjectPrefix, events[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	if out, err := verify(); exitCode(err) != 0 || !strings.HasPrefix(out, "OK: 1 events in the store, 1 messages") {
		t.Errorf("published: exit %d (%v), printed %q; want exit 0 and OK", exitCode(err), err, out)
	}
}
