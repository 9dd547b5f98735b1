package subscribers_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/natsauth"
	"github.com/chartstream/chartstream/internal/subscribers"
	"github.com/chartstream/chartstream/internal/testkit"
)

// env is an operator-mode nats-server set up as the local stack's, the
// two streams with messages of two tenants, and a registry on them.
type env struct {
	t        *testing.T
	srv      *testkit.OperatorNATS
	js       jetstream.JetStream
	registry *subscribers.Registry
	a, b     chartstream.TenantID
}

var streams = subscribers.Streams{Raw: "CLINICAL", RawPrefix: "clinical", Deid: "CLINICAL_DEID", DeidPrefix: "deid"}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, srv: testkit.MustOperatorNATS(t), a: testkit.MustTenant(t), b: testkit.MustTenant(t)}
	platform := e.srv.MustConnectAs(t, e.srv.File(natsauth.PlatformCredsFile))
	var err error
	if e.js, err = jetstream.New(platform); err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Context(t)
	for name, prefix := range map[string]string{streams.Raw: streams.RawPrefix, streams.Deid: streams.DeidPrefix} {
		// Direct gets allowed, as a stream may well be: the isolation
		// must not depend on the stream's settings.
		if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{prefix + ".>"}, AllowDirect: true, MaxBytes: 8 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	e.publish(e.a, 3)
	e.publish(e.b, 3)
	issuer, err := natsauth.LoadIssuer(e.srv.File(natsauth.AccountSigningKeyFile), e.srv.File(natsauth.PlatformCredsFile))
	if err != nil {
		t.Fatal(err)
	}
	revoker, err := natsauth.NewRevoker(e.srv.MustConnectAs(t, e.srv.File(natsauth.SystemCredsFile)), e.srv.File(natsauth.OperatorSigningKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	e.registry, err = subscribers.New(subscribers.Deps{DB: testkit.MustAdminPool(t), JetStream: e.js, Issuer: issuer, Revoker: revoker}, streams)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// publish puts n messages of the tenant on both streams, each naming the
// tenant in its body.
func (e *env) publish(tenant chartstream.TenantID, n int) {
	e.t.Helper()
	for i := 0; i < n; i++ {
		for _, prefix := range []string{streams.RawPrefix, streams.DeidPrefix} {
			if _, err := e.js.Publish(testkit.Context(e.t), prefix+"."+tenant.String()+".patient.patient.registered", []byte(`{"tenant_id":"`+tenant.String()+`"}`)); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

// consumer is a subscriber's client: its creds, connection and the
// permission violations the server reported to it.
type consumer struct {
	sub        subscribers.Subscriber
	credsFile  string
	nc         *nats.Conn
	js         jetstream.JetStream
	mu         sync.Mutex
	violations []string
}

func (e *env) subscriber(tenant chartstream.TenantID, name string, deidentified bool) *consumer {
	e.t.Helper()
	s, creds, err := e.registry.Create(testkit.Context(e.t), tenant, name, deidentified)
	if err != nil {
		e.t.Fatal(err)
	}
	c := &consumer{sub: s, credsFile: filepath.Join(e.t.TempDir(), name+".creds")}
	if err := os.WriteFile(c.credsFile, creds, 0o600); err != nil {
		e.t.Fatal(err)
	}
	c.nc = e.srv.MustConnectAs(e.t, c.credsFile, nats.CustomInboxPrefix(s.InboxPrefix),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.violations = append(c.violations, err.Error())
			c.mu.Unlock()
		}))
	if c.js, err = jetstream.New(c.nc); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// deniedSoon reports whether the server has told the client of a
// permission violation naming subject.
func (c *consumer) deniedSoon(subject string) bool {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, v := range c.violations {
			if strings.Contains(v, "Permissions Violation") && strings.Contains(v, subject) {
				c.mu.Unlock()
				return true
			}
		}
		c.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func short(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

// Tenant A's de-identified credentials read A's messages and, by no route
// at all, B's: not by subscribing to B's subjects, not through the
// JetStream API (stream info, direct get, message get, a consumer of its
// own with B's filter, an ordered consumer), not through B's consumer or
// B's inbox.
func TestCredentialsReadOnlyTheirTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.subscriber(e.a, "research", true)
	b := e.subscriber(e.b, "research", true)
	bSubjects := streams.DeidPrefix + "." + e.b.String() + ".>"

	t.Run("positive control: A reads A's messages through its consumer", func(t *testing.T) {
		cons, err := a.js.Consumer(testkit.Context(t), streams.Deid, a.sub.Consumer)
		if err != nil {
			t.Fatal(err)
		}
		batch, err := cons.Fetch(10, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if !strings.HasPrefix(m.Subject(), streams.DeidPrefix+"."+e.a.String()+".") || !strings.Contains(string(m.Data()), e.a.String()) {
				t.Errorf("A got %s: %s", m.Subject(), m.Data())
			}
			if err := m.DoubleAck(testkit.Context(t)); err != nil {
				t.Errorf("ack: %v", err)
			}
		}
		if n != 3 {
			t.Errorf("A read %d of its 3 messages (%v)", n, batch.Error())
		}
	})

	for _, subject := range []string{bSubjects, streams.RawPrefix + "." + e.b.String() + ".>", ">", b.sub.InboxPrefix + ".>"} {
		t.Run("core subscribe "+subject, func(t *testing.T) {
			sub, err := a.nc.SubscribeSync(subject)
			if err == nil {
				_ = a.nc.Flush()
				e.publish(e.b, 1)
				if m, err := sub.NextMsg(300 * time.Millisecond); err == nil {
					t.Fatalf("A received %s", m.Subject)
				}
			}
			if !a.deniedSoon(subject) {
				t.Errorf("no permission violation for subscribing to %s", subject)
			}
		})
	}

	api := map[string]struct {
		subject string
		body    string
	}{
		"stream info":    {"$JS.API.STREAM.INFO." + streams.Deid, ""},
		"direct get":     {"$JS.API.DIRECT.GET." + streams.Deid, `{"last_by_subj":"` + streams.DeidPrefix + "." + e.b.String() + `.patient.patient.registered"}`},
		"msg get":        {"$JS.API.STREAM.MSG.GET." + streams.Deid, `{"seq":4}`},
		"B's consumer":   {"$JS.API.CONSUMER.MSG.NEXT." + streams.Deid + "." + b.sub.Consumer, `{"batch":10,"no_wait":true}`},
		"raw stream":     {"$JS.API.STREAM.MSG.GET." + streams.Raw, `{"seq":4}`},
		"list consumers": {"$JS.API.CONSUMER.LIST." + streams.Deid, ""},
	}
	for name, req := range api {
		t.Run(name, func(t *testing.T) {
			if m, err := a.nc.RequestWithContext(short(t), req.subject, []byte(req.body)); err == nil {
				t.Fatalf("answered: %s", m.Data)
			}
			if !a.deniedSoon(req.subject) {
				t.Errorf("no permission violation for %s", req.subject)
			}
		})
	}

	t.Run("consumer with B's filter", func(t *testing.T) {
		if _, err := a.js.CreateConsumer(short(t), streams.Deid, jetstream.ConsumerConfig{FilterSubject: bSubjects}); err == nil {
			t.Fatal("A created a consumer of B's subjects")
		}
		if !a.deniedSoon("$JS.API.CONSUMER.CREATE." + streams.Deid) {
			t.Error("no permission violation")
		}
	})
	t.Run("ordered consumer", func(t *testing.T) {
		if _, err := a.js.OrderedConsumer(short(t), streams.Deid, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bSubjects}}); err == nil {
			t.Fatal("A made an ordered consumer of B's subjects")
		}
		if !a.deniedSoon("$JS.API.CONSUMER.CREATE." + streams.Deid) {
			t.Error("no permission violation")
		}
	})
	t.Run("B's consumer through the API", func(t *testing.T) {
		if _, err := a.js.Consumer(short(t), streams.Deid, b.sub.Consumer); err == nil {
			t.Fatal("A bound to B's consumer")
		}
	})
	t.Run("B still reads its own", func(t *testing.T) {
		cons, err := b.js.Consumer(testkit.Context(t), streams.Deid, b.sub.Consumer)
		if err != nil {
			t.Fatal(err)
		}
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if !strings.Contains(string(m.Data()), e.b.String()) {
				t.Errorf("B got %s", m.Data())
			}
		}
	})
}

// Revoking a subscriber closes its connections, refuses new ones and
// deletes its consumer; its name is free again.
func TestRevokedCredentialsReadNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.subscriber(e.a, "quality", false)
	closed := make(chan struct{})
	a.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	a.nc.SetDisconnectErrHandler(func(*nats.Conn, error) {})
	if _, err := e.registry.Revoke(testkit.Context(t), e.a, "quality"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Consumer(testkit.Context(t), streams.Raw, a.sub.Consumer); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("consumer after revocation: %v, want not found", err)
	}
	deadline := time.After(5 * time.Second)
	for a.nc.IsConnected() {
		select {
		case <-deadline:
			t.Fatal("the revoked user is still connected")
		case <-time.After(50 * time.Millisecond):
		}
	}
	if nc, err := nats.Connect(e.srv.URL(), nats.UserCredentials(a.credsFile)); err == nil {
		nc.Close()
		t.Error("the revoked user connected again")
	}
	list, err := e.registry.List(testkit.Context(t), e.a)
	if err != nil || len(list) != 1 || list[0].RevokedAt == nil {
		t.Errorf("list %+v (%v), want the revoked subscriber", list, err)
	}
	if _, err := e.registry.Revoke(testkit.Context(t), e.a, "quality"); chartstream.ErrorCode(err) != chartstream.ENOTFOUND {
		t.Errorf("second revocation: %v, want not found", err)
	}
	if _, _, err := e.registry.Create(testkit.Context(t), e.a, "quality", false); err != nil {
		t.Errorf("the name after revocation: %v", err)
	}
	if _, _, err := e.registry.Create(testkit.Context(t), e.a, "quality", true); chartstream.ErrorCode(err) != chartstream.ECONFLICT {
		t.Errorf("a taken name: %v, want conflict", err)
	}
	if _, _, err := e.registry.Create(testkit.Context(t), e.a, "Bad Name", true); chartstream.ErrorCode(err) != chartstream.EINVALID {
		t.Errorf("a bad name: %v, want invalid", err)
	}
}
