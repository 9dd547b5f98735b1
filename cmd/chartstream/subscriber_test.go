package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream/internal/natsauth"
	"github.com/chartstream/chartstream/internal/subscribers"
	"github.com/chartstream/chartstream/internal/testkit"
)

// subscriberStack is an operator-mode nats-server with the two streams,
// and the subscriber command's flags for it.
type subscriberStack struct {
	srv   *testkit.OperatorNATS
	js    jetstream.JetStream
	flags []string
}

func newSubscriberStack(t *testing.T) *subscriberStack {
	t.Helper()
	testkit.Env(t, "DATABASE_ADMIN_URL")
	s := &subscriberStack{srv: testkit.MustOperatorNATS(t)}
	var err error
	if s.js, err = jetstream.New(s.srv.MustConnectAs(t, s.srv.File(natsauth.PlatformCredsFile))); err != nil {
		t.Fatal(err)
	}
	for name, subjects := range map[string]string{"CLINICAL": "clinical.>", "CLINICAL_DEID": "deid.>"} {
		if _, err := s.js.CreateStream(testkit.Context(t), jetstream.StreamConfig{Name: name, Subjects: []string{subjects}, MaxBytes: 8 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	s.flags = []string{"--nats-url", s.srv.URL(), "--nats-creds-file", s.srv.File(natsauth.PlatformCredsFile),
		"--nats-account-signing-key-file", s.srv.File(natsauth.AccountSigningKeyFile),
		"--nats-system-creds-file", s.srv.File(natsauth.SystemCredsFile), "--nats-operator-signing-key-file", s.srv.File(natsauth.OperatorSigningKeyFile),
		"--relay-stream", "CLINICAL", "--deid-stream", "CLINICAL_DEID"}
	return s
}

func (s *subscriberStack) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return execute(testkit.Context(t), append(append([]string{"subscriber"}, args...), s.flags...)...)
}

func TestSubscriberCLIRefusesBadInput(t *testing.T) {
	t.Parallel()
	s := newSubscriberStack(t)
	tenant := testkit.MustTenant(t).String()
	exists := filepath.Join(t.TempDir(), "taken.creds")
	if err := os.WriteFile(exists, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.run(t, "create", "--tenant", tenant, "--name", "dup", "--creds-out", filepath.Join(t.TempDir(), "dup.creds")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no tenant", []string{"create", "--name", "x"}, "--tenant is required"},
		{"no name", []string{"create", "--tenant", tenant}, "--name is required"},
		{"bad name", []string{"create", "--tenant", tenant, "--name", "Research Team"}, "--name must be"},
		{"unknown slug", []string{"create", "--tenant", "no-such-clinic-" + uuid.NewString()[:8], "--name", "x", "--creds-out", filepath.Join(t.TempDir(), "x")}, "no tenant with slug"},
		{"unknown id", []string{"create", "--tenant", uuid.NewString(), "--name", "x", "--creds-out", filepath.Join(t.TempDir(), "x")}, "tenant"},
		{"taken name", []string{"create", "--tenant", tenant, "--name", "dup", "--creds-out", filepath.Join(t.TempDir(), "x")}, "named dup already"},
		{"creds file exists", []string{"create", "--tenant", tenant, "--name", "x", "--creds-out", exists}, "never overwritten"},
		{"revoke unknown", []string{"revoke", "--tenant", tenant, "--name", "nobody"}, "no active subscriber named nobody"},
		{"revoke without name", []string{"revoke", "--tenant", tenant}, "--name is required"},
		{"unknown flag", []string{"create", "--tenat", tenant}, "unknown flag: --tenat"},
		{"an argument", []string{"list", tenant}, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := s.run(t, tc.args...)
			if code := exitCode(err); code != 2 || !strings.Contains(oneLine(err), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("exit %d, error %q; want exit 2 and one line containing %q", code, err, tc.want)
			}
			if out != "" {
				t.Errorf("printed %q, want nothing on stdout", out)
			}
		})
	}
}

// create writes credentials that read the tenant's de-identified subjects
// through the consumer it made; list shows it; revoke ends it.
func TestSubscriberCLICreateListRevoke(t *testing.T) {
	t.Parallel()
	s := newSubscriberStack(t)
	tenant := testkit.MustTenant(t)
	for i := 0; i < 2; i++ {
		if _, err := s.js.Publish(testkit.Context(t), "deid."+tenant.String()+".patient.patient.registered", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	creds := filepath.Join(t.TempDir(), "research.creds")
	out, err := s.run(t, "create", "--tenant", tenant.String(), "--name", "research", "--deidentified", "--creds-out", creds, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		subscribers.Subscriber
		CredsFile string `json:"creds_file"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Stream != "CLINICAL_DEID" || created.CredsFile != creds {
		t.Fatalf("create printed %q (%v)", out, err)
	}
	if info, err := os.Stat(creds); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("creds file %v (%v), want mode 0600", info, err)
	}
	nc := s.srv.MustConnectAs(t, creds, nats.CustomInboxPrefix(created.InboxPrefix), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	js, _ := jetstream.New(nc)
	cons, err := js.Consumer(testkit.Context(t), created.Stream, created.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(5, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range batch.Messages() {
		n++
	}
	if n != 2 {
		t.Errorf("the credentials read %d of the tenant's 2 messages", n)
	}
	out, err = s.run(t, "list", "--tenant", tenant.String())
	if err != nil || !strings.Contains(out, "research") || !strings.Contains(out, created.Consumer) {
		t.Errorf("list: %q (%v)", out, err)
	}
	if out, err = s.run(t, "revoke", "--tenant", tenant.String(), "--name", "research"); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %q (%v)", out, err)
	}
	var listed []subscribers.Subscriber
	out, err = s.run(t, "list", "--tenant", tenant.String(), "--json")
	if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed) != 1 || listed[0].RevokedAt == nil {
		t.Errorf("list after revoke: %q (%v)", out, err)
	}
}
