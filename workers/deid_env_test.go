package workers_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/internal/deid"
	"github.com/chartstream/chartstream/internal/signing"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/workers"
)

// deidEnv is a relay env for the clinical event types with a signing
// relay and a de-identifier of its own.
type deidEnv struct {
	*relayEnv
	signer *signing.Signer
	cfg    workers.DeidentifierConfig
	rules  *deid.Deidentifier
}

func newDeidEnv(t *testing.T, dates deid.DateMode) *deidEnv {
	t.Helper()
	r := newRelayEnv(t)
	r.reader = mustStoreWith(t, "DATABASE_RELAY_URL", commands.EventSpecs())
	r.writer = mustStoreWith(t, "DATABASE_URL", commands.EventSpecs())
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := deid.New(commands.EventSpecs(), deid.Config{Dates: dates})
	if err != nil {
		t.Fatal(err)
	}
	e := &deidEnv{relayEnv: r, signer: signing.NewSigner(priv), rules: rules, cfg: workers.DeidentifierConfig{
		Name: r.cfg.Name, Source: r.cfg.Stream, SourcePrefix: r.cfg.SubjectPrefix,
		Stream: r.cfg.Stream + "_DEID", SubjectPrefix: r.cfg.SubjectPrefix + "d",
		LeaseRetry: 200 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, MaxBytes: 64 << 20,
		// The relay publishes every test's tenants, under keys of other
		// tests' own.
		Tenants: []chartstream.TenantID{r.tenant},
	}}
	return e
}

// start runs the signing relay and the de-identifier until the test ends.
func (e *deidEnv) start() (stopDeid func()) {
	e.t.Helper()
	relay, err := workers.NewRelay(workers.RelayDeps{Events: e.reader, DB: testkit.MustPool(e.t, "DATABASE_RELAY_URL"), JetStream: e.js,
		Signer: e.signer, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, e.relayEnv.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(runUntilCleanup(e.t, relay.Run))
	return e.startDeid()
}

// startDeid runs a de-identifier until the returned stop (or the test's end).
func (e *deidEnv) startDeid() (stop func()) {
	e.t.Helper()
	js, err := jetstream.New(e.nats.MustConnect(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	d, err := workers.NewDeidentifier(workers.DeidentifierDeps{JetStream: js, Sessions: testkit.MustAppPool(e.t), Events: e.writer,
		Rules: e.rules, Verifier: e.signer.Public(), Signer: e.signer, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	stop = runUntilCleanup(e.t, d.Run)
	e.t.Cleanup(stop)
	return stop
}

// runUntilCleanup runs fn until the returned stop is called.
func runUntilCleanup(t *testing.T, fn func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = fn(ctx) }()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }
}

// deidMsg is a de-identified message as a consumer receives it.
type deidMsg struct {
	seq     uint64
	headers map[string][]string
	raw     []byte
	body    deid.Message
}

// deidentified returns the tenant's de-identified messages in stream order.
func (e *deidEnv) deidentified(tenant chartstream.TenantID) []deidMsg {
	e.t.Helper()
	var out []deidMsg
	for _, m := range fetchAll(e.t, e.js, e.cfg.Stream, e.cfg.SubjectPrefix+"."+tenant.String()+".>") {
		meta, _ := m.Metadata()
		d := deidMsg{seq: meta.Sequence.Stream, headers: m.Headers(), raw: m.Data()}
		if err := json.Unmarshal(m.Data(), &d.body); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// waitDeidentified polls until the tenant has at least want messages.
func (e *deidEnv) waitDeidentified(tenant chartstream.TenantID, want int) []deidMsg {
	e.t.Helper()
	var got []deidMsg
	waitUntil(e.t, 15*time.Second, "de-identified messages", func() bool {
		got = e.deidentified(tenant)
		return len(got) >= want
	})
	return got
}

// appendAs appends one event with a raw payload (any fields at all, as an
// import could write them) and metadata naming a person.
func (e *deidEnv) appendAs(tenant chartstream.TenantID, stream chartstream.StreamRef, typ string, payload map[string]any) {
	e.t.Helper()
	body, err := json.Marshal(payload)
	if err != nil {
		e.t.Fatal(err)
	}
	md := chartstream.Metadata{Actor: "dr.jane.whitfield@hospital.example", CorrelationID: "corr-" + stream.ID.String(), RequestID: "req-7731-whitfield"}
	if _, err := e.writer.Append(testkit.Context(e.t), tenant, stream, chartstream.AnyVersion,
		chartstream.NewEvent{Type: typ, Payload: body, Metadata: md}); err != nil {
		e.t.Fatalf("append %s: %v", typ, err)
	}
}

// leaks returns the identifiers found in the messages' bytes, headers
// included, ignoring case. An identifier of digits only (a ZIP code) is
// found only as a whole token: inside a pseudonym's or a UUID's hex it
// would turn up by chance (one 32-digit hex string holds a given 5-digit
// number with odds of about 1 in 37,000).
func leaks(msgs []deidMsg, identifiers []string) []string {
	var all strings.Builder
	for _, m := range msgs {
		for k, vs := range m.headers {
			all.WriteString(k + ":" + strings.Join(vs, ",") + "\n")
		}
		all.Write(m.raw)
		all.WriteByte('\n')
	}
	corpus := strings.ToLower(all.String())
	var found []string
	for _, id := range identifiers {
		switch {
		case id == "":
		case digitsOnly.MatchString(id):
			if regexp.MustCompile(`(^|[^0-9a-z])` + id + `($|[^0-9a-z])`).MatchString(corpus) {
				found = append(found, id)
			}
		case strings.Contains(corpus, strings.ToLower(id)):
			found = append(found, id)
		}
	}
	return found
}

var digitsOnly = regexp.MustCompile(`^[0-9]+$`)

// withoutDateValues blanks the messages' values that are dates or times:
// under date shifting, a patient's shifted date may fall by chance on a
// date another identifier names (a shift of 11 days turns Feb 3 into Feb
// 14), which is no leak. Shifted fields are checked one by one instead; a
// date anywhere else (in a free text, a header, a key) is still searched.
func withoutDateValues(t *testing.T, msgs []deidMsg) []deidMsg {
	t.Helper()
	date := regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ].*)?$`)
	var blank func(v any) any
	blank = func(v any) any {
		switch v := v.(type) {
		case string:
			if date.MatchString(v) {
				return ""
			}
		case map[string]any:
			for k, x := range v {
				v[k] = blank(x)
			}
		case []any:
			for i, x := range v {
				v[i] = blank(x)
			}
		}
		return v
	}
	out := make([]deidMsg, len(msgs))
	for i, m := range msgs {
		var v any
		if err := json.Unmarshal(m.raw, &v); err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(blank(v))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = deidMsg{seq: m.seq, headers: m.headers, raw: raw, body: m.body}
	}
	return out
}

// ids returns the ids' string forms, for the leak search.
func ids(ids ...uuid.UUID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}
