package natsauth_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream/internal/natsauth"
	"github.com/chartstream/chartstream/internal/testkit"
)

// A second DevSetup (every make up) keeps the keys: a new account JWT in
// the preload would be newer than the one holding the revocations.
func TestDevSetupKeepsItsKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secrets, conf := filepath.Join(dir, "secrets"), filepath.Join(dir, "nats-auth.conf")
	created, err := natsauth.DevSetup(secrets, conf, filepath.Join(dir, "jwt"))
	if err != nil || !created {
		t.Fatalf("first setup: created %v, %v", created, err)
	}
	before, _ := os.ReadFile(conf)
	seed, _ := os.ReadFile(filepath.Join(secrets, natsauth.AccountSigningKeyFile))
	if created, err = natsauth.DevSetup(secrets, conf, filepath.Join(dir, "jwt")); err != nil || created {
		t.Fatalf("second setup: created %v, %v", created, err)
	}
	after, _ := os.ReadFile(conf)
	seedAfter, _ := os.ReadFile(filepath.Join(secrets, natsauth.AccountSigningKeyFile))
	if string(before) != string(after) || string(seed) != string(seedAfter) {
		t.Error("the second setup changed the keys or the config")
	}
	if info, err := os.Stat(filepath.Join(secrets, natsauth.OperatorSigningKeyFile)); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("operator signing key: %v %v, want mode 0600", info, err)
	}
}

// The platform user uses JetStream; no one connects without credentials.
func TestPlatformUserAndNoAnonymous(t *testing.T) {
	t.Parallel()
	srv := testkit.MustOperatorNATS(t)
	js, err := jetstream.New(srv.MustConnectAs(t, srv.File(natsauth.PlatformCredsFile)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(testkit.Context(t), jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, MaxBytes: 1 << 20}); err != nil {
		t.Fatalf("platform user: %v", err)
	}
	if nc, err := nats.Connect(srv.URL()); err == nil {
		nc.Close()
		t.Error("connected without credentials")
	}
}

// The local stack's processes keep their credentials when they talk to a
// server that takes none (chaos runs its own nats-server without auth).
func TestCredentialsAgainstAServerWithoutAuth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := natsauth.DevSetup(dir, filepath.Join(dir, "c.conf"), filepath.Join(dir, "jwt")); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(testkit.MustNATSServer(t).URL(), nats.UserCredentials(filepath.Join(dir, natsauth.PlatformCredsFile)))
	if err != nil {
		t.Fatalf("connect with creds to a server without auth: %v", err)
	}
	nc.Close()
}
