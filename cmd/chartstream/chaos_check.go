package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/medicationorder"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/workers"
)

// fact is what one acknowledged command asserts: a patient registered, an
// observation recorded or an order prescribed, by its id.
type fact struct {
	Kind commandKind
	ID   uuid.UUID
}

// chaosEvent is one of the tenant's events as the checks see it, read
// from the event store or from the stream.
type chaosEvent struct {
	ID uuid.UUID
	// Type is the event's type; empty for a stream message whose body
	// did not decode.
	Type string
	// Fact is the fact the event records; zero for other event types.
	Fact fact
	// Correlation is the correlation id: the load's Idempotency-Key.
	Correlation string
	// Cursor is the event's place in the store's gap-free order.
	Cursor eventstore.Cursor
}

// observed is everything the checks found for the tenant.
type observed struct {
	// Store holds the event store's events in its order (txid, position).
	Store []chaosEvent
	// Stream holds the tenant's stream messages in stream order.
	Stream []chaosEvent
	// StreamRead is false when the stream was not read (yet): all-sigkill
	// reads it only after the run (see checkAfterAll).
	StreamRead bool
	// Rows counts the read model rows of each fact.
	Rows map[fact]int
}

// factOf returns the fact an event records, if it records one the load
// causes.
func factOf(e chartstream.Event) fact {
	switch e.Type {
	case patient.TypeRegistered:
		return fact{kindPatient, e.Stream.ID}
	case patient.TypeObservationRecorded:
		var p struct {
			ObservationID uuid.UUID `json:"observation_id"`
		}
		if json.Unmarshal(e.Payload, &p) == nil && p.ObservationID != uuid.Nil {
			return fact{kindObservation, p.ObservationID}
		}
	case medicationorder.TypePrescribed:
		return fact{kindOrder, e.Stream.ID}
	}
	return fact{}
}

func newChaosEvent(e chartstream.Event) chaosEvent {
	return chaosEvent{ID: e.ID, Type: e.Type, Fact: factOf(e), Correlation: e.Metadata.CorrelationID, Cursor: eventstore.CursorOf(e)}
}

// collector reads the tenant's events from the store (incrementally, as
// the relay role), from the stream once it follows one (an ordered
// consumer that keeps running) and the read models (as the app role, in
// the tenant's transaction).
type collector struct {
	tenant chartstream.TenantID
	store  *eventstore.Store
	app    *pgxpool.Pool

	cursor eventstore.Cursor
	stored []chaosEvent

	// stream is the JetStream stream followed; nil until follow.
	stream   jetstream.Stream
	mu       sync.Mutex
	streamed []chaosEvent
	consumed jetstream.ConsumeContext
}

func newCollector(tenant chartstream.TenantID, store *eventstore.Store, app *pgxpool.Pool) *collector {
	return &collector{tenant: tenant, store: store, app: app}
}

// follow subscribes to the tenant's subjects of stream from the first
// message.
func (c *collector) follow(ctx context.Context, nc *nats.Conn, stream string) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if c.stream, err = js.Stream(ctx, stream); err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	cons, err := c.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{c.subjects()},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("ordered consumer on %s: %w", stream, err)
	}
	c.consumed, err = cons.Consume(c.onMessage)
	if err != nil {
		return fmt.Errorf("consume %s: %w", stream, err)
	}
	return nil
}

func (c *collector) subjects() string {
	return workers.TenantSubjects(workers.DefaultSubjectPrefix, c.tenant)
}

// streamBehind is how many of the tenant's messages the stream holds
// beyond those delivered so far: zero once a stream nothing publishes to
// any more has been read to its end.
func (c *collector) streamBehind(ctx context.Context) (int, error) {
	info, err := c.stream.Info(ctx, jetstream.WithSubjectFilter(c.subjects()))
	if err != nil {
		return 0, fmt.Errorf("stream info: %w", err)
	}
	var total uint64
	for _, n := range info.State.Subjects {
		total += n
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return int(total) - len(c.streamed), nil
}

// onMessage records a stream message. Its id is the message id JetStream
// deduplicates on; a body that does not decode still counts, by its
// headers, for duplicates and order.
func (c *collector) onMessage(m jetstream.Msg) {
	var ev chaosEvent
	if e, err := workers.DecodeMessage(m.Data()); err == nil {
		ev = newChaosEvent(e)
	} else {
		h := m.Headers()
		ev.Cursor.TxID, _ = strconv.ParseInt(h.Get(workers.HeaderTxID), 10, 64)
		ev.Cursor.Position, _ = strconv.ParseInt(h.Get(workers.HeaderPosition), 10, 64)
	}
	if id, err := uuid.Parse(m.Headers().Get(jetstream.MsgIDHeader)); err == nil {
		ev.ID = id
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.streamed = append(c.streamed, ev)
}

// Close stops the stream subscription.
func (c *collector) Close() {
	if c.consumed != nil {
		c.consumed.Stop()
	}
}

// poll returns what is visible now: the store read on from the last poll,
// the stream as consumed so far, the read models afresh.
func (c *collector) poll(ctx context.Context) (observed, error) {
	for {
		events, next, err := c.store.ReadAll(ctx, eventstore.Filter{Tenant: c.tenant}, c.cursor, 5000)
		if err != nil {
			return observed{}, fmt.Errorf("read the event store: %w", err)
		}
		for _, e := range events {
			c.stored = append(c.stored, newChaosEvent(e))
		}
		c.cursor = next
		if len(events) == 0 {
			break
		}
	}
	rows, err := c.readModelRows(ctx)
	if err != nil {
		return observed{}, err
	}
	c.mu.Lock()
	streamed := append([]chaosEvent(nil), c.streamed...)
	c.mu.Unlock()
	return observed{Store: append([]chaosEvent(nil), c.stored...), Stream: streamed, StreamRead: c.stream != nil, Rows: rows}, nil
}

// readModelQueries count each fact's rows in the read model that holds it.
var readModelQueries = map[commandKind]string{
	kindPatient:     `SELECT patient_id, count(*) FROM patient_charts GROUP BY patient_id`,
	kindObservation: `SELECT observation_id, count(*) FROM observations GROUP BY observation_id`,
	kindOrder:       `SELECT order_id, count(*) FROM medication_orders GROUP BY order_id`,
}

func (c *collector) readModelRows(ctx context.Context) (map[fact]int, error) {
	rows := map[fact]int{}
	err := postgres.InTenantTx(ctx, c.app, c.tenant, func(tx pgx.Tx) error {
		for _, kind := range commandKinds {
			r, err := tx.Query(ctx, readModelQueries[kind])
			if err != nil {
				return err
			}
			var id uuid.UUID
			var n int
			if _, err := pgx.ForEachRow(r, []any{&id, &n}, func() error {
				rows[fact{kind, id}] = n
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the read models: %w", err)
	}
	return rows, nil
}

// Statuses of a verify subcommand.
const (
	verifyOK            = "ok"
	verifyDiscrepancies = "discrepancies"
	verifyError         = "error"
	verifyNotAvailable  = "not available"
)

// verify runs a verify subcommand of the binary and classifies its exit:
// 0 ok, 1 with a JSON report discrepancies, 2 error; anything else (such
// as cobra's "unknown command", exit 1 without JSON) not available.
func (r *chaosRun) verify(ctx context.Context, args ...string) verifyResult {
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.cfg.Binary, args...)
	cmd.Env = r.env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := verifyResult{ExitCode: cmd.ProcessState.ExitCode()}
	if out := strings.TrimSpace(stdout.String()); out != "" && json.Valid([]byte(out)) {
		res.Output = json.RawMessage(out)
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		res.Status = verifyOK
		return res
	case !errors.As(err, &exit):
		res.Status, res.Detail = verifyError, err.Error()
		return res
	case res.ExitCode == 1 && res.Output != nil:
		res.Status = verifyDiscrepancies
	case res.ExitCode == 2:
		res.Status = verifyError
	default:
		res.Status = verifyNotAvailable
	}
	res.Detail = lastLine(stderr.String())
	return res
}
