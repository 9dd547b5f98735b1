package messaging_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/chartstream/chartstream/internal/messaging"
	"github.com/chartstream/chartstream/internal/testkit"
)

// A NATS server that requires credentials admits the platform with them
// and refuses it without.
func TestConnectWithCredentials(t *testing.T) {
	t.Parallel()
	srv := testkit.MustNATSServerWith(t, func(o *server.Options) { o.Username, o.Password = "relay", "s3cret" })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := testkit.Context(t)
	c, err := messaging.Connect(ctx, log, messaging.Config{URL: srv.URL(), User: "relay", Password: "s3cret"})
	if err != nil {
		t.Fatalf("with credentials: %v", err)
	}
	c.Close()
	if c, err := messaging.Connect(ctx, log, messaging.Config{URL: srv.URL()}); err == nil {
		c.Close()
		t.Fatal("without credentials: connected")
	}
	if c, err := messaging.Connect(ctx, log, messaging.Config{URL: srv.URL(), User: "relay", Password: "wrong"}); err == nil {
		c.Close()
		t.Fatal("with a wrong password: connected")
	}
}

func TestConfigRefusesHalfSettings(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]messaging.Config{
		"user without password": {URL: "nats://x", User: "u"},
		"two methods":           {URL: "nats://x", User: "u", Password: "p", CredsFile: "f"},
		"cert without key":      {URL: "nats://x", TLSCertFile: "c"},
		"credentials, embedded": {User: "u", Password: "p"},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
