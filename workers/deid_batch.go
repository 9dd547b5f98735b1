package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/deid"
)

// Headers of a de-identified message, besides Nats-Msg-Id (the event's
// pseudonym) and the tenant, event type and schema version headers that
// raw messages carry too.
const (
	// HeaderDeidPrev is the stream sequence of the tenant's previous
	// de-identified message (0 before its first), so a consumer of one
	// tenant's subjects can tell a missed message from the next one.
	HeaderDeidPrev = "Chartstream-Deid-Prev-Seq"
)

// deidRun is one resumption of the de-identifier: where the stream is,
// and what it learned on the way.
type deidRun struct {
	d   *Deidentifier
	log *slog.Logger
	kv  jetstream.KeyValue
	// stream is the de-identified stream.
	stream jetstream.Stream
	// source is the last source sequence read; published the stream
	// sequence of the last message published, acked of the last one
	// acknowledged.
	source, published, acked uint64
	// inflight are the messages published and not yet acknowledged, in
	// order; marks say where each batch ended, for the checkpoint.
	inflight []flight
	marks    []deidCheckpoint
	// done is the checkpoint the acknowledgements have reached.
	done deidCheckpoint
	// skip counts source messages already published (see runOnce).
	skip uint64
	// prev is each tenant's last de-identified sequence, looked up on
	// first use.
	prev map[chartstream.TenantID]uint64
	// patients caches the patient of encounter streams.
	patients map[uuid.UUID]uuid.UUID
	// savedAt is when the checkpoint was last saved, saved what.
	savedAt time.Time
	saved   deidCheckpoint
	// unreadable counts each tenant's events withheld as unreadable, so
	// that a tenant's first is logged, not every one.
	unreadable map[chartstream.TenantID]int
}

// deidCheckpointEvery is how often the checkpoint is saved. It is only a
// shortcut (a restart counts off what the stream holds beyond it), so it
// need not cost a round trip per batch.
const deidCheckpointEvery = time.Second

// pending is one message of a batch to publish.
type pending struct {
	source chartstream.Event
	msg    *nats.Msg
}

// batch de-identifies and publishes a batch of source messages, checks
// every acknowledgement in order, then saves the checkpoint.
func (r *deidRun) batch(ctx context.Context, msgs []jetstream.Msg) error {
	var events []chartstream.Event
	for _, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("source message: %w", err)
		}
		r.source = meta.Sequence.Stream
		e, ok := r.accept(m, meta.Sequence.Stream)
		if !ok {
			continue
		}
		if r.skip > 0 {
			r.skip--
			continue
		}
		events = append(events, e)
	}
	out, err := r.deidentify(ctx, events)
	if err != nil {
		return err
	}
	// Backpressure: at most twice MaxInFlight unacknowledged.
	for len(r.inflight) > 0 && len(r.inflight)+len(out) > 2*r.d.cfg.MaxInFlight {
		if err := r.waitOldest(ctx); err != nil {
			return err
		}
	}
	if err := r.publish(ctx, out); err != nil {
		return err
	}
	r.marks = append(r.marks, deidCheckpoint{Source: r.source, Deid: r.published})
	r.advance()
	return nil
}

// saveCheckpoint saves how far the acknowledgements reached, at most once
// a second.
func (r *deidRun) saveCheckpoint(ctx context.Context) error {
	if time.Since(r.savedAt) < deidCheckpointEvery || r.done == r.saved {
		return nil
	}
	body, _ := json.Marshal(r.done)
	if _, err := r.kv.Put(ctx, r.d.cfg.Name, body); err != nil {
		return fmt.Errorf("save de-identifier checkpoint: %w", err)
	}
	r.savedAt, r.saved = time.Now(), r.done
	return nil
}

// accept reads a source message; false for one that is not the relay's,
// which yields no message (decided by its content alone, so a restart
// decides the same).
func (r *deidRun) accept(m jetstream.Msg, seq uint64) (chartstream.Event, bool) {
	if v := r.d.deps.Verifier; v != nil {
		if err := v.Verify(signedContent(m.Headers(), m.Data()), m.Headers().Get(HeaderSignature)); err != nil {
			r.log.Warn("skipped a clinical message without the relay's signature", "source_seq", seq)
			return chartstream.Event{}, false
		}
	}
	e, err := DecodeMessage(m.Data())
	if err != nil {
		r.log.Warn("skipped a clinical message that names no event", "source_seq", seq)
		return e, false
	}
	return e, true
}

// deidentify opens the events, learns their patients and erasures, and
// de-identifies them, in order.
func (r *deidRun) deidentify(ctx context.Context, events []chartstream.Event) ([]pending, error) {
	src := r.d.deps.Events
	inputs := make([]deid.Input, len(events))
	subjects := make(map[chartstream.TenantID][]uuid.UUID)
	for i, e := range events {
		in := deid.Input{Event: e}
		var err error
		if in.Key, err = src.PseudonymKey(ctx, e.Tenant); err == nil {
			if err = src.Open(ctx, &in.Event); err == nil {
				in.Patient, err = r.patientOf(ctx, in.Event)
			}
		}
		switch {
		case err != nil && permanent(err):
			// Sealed under a key this deployment cannot unwrap: withheld
			// as unreadable rather than holding up every tenant.
			in.Event.Payload, in.Patient = nil, uuid.Nil
			if r.unreadable[e.Tenant]++; r.unreadable[e.Tenant] == 1 {
				r.log.Warn("a tenant's event cannot be read (a key this deployment cannot unwrap); its message, and those of the tenant's other such events, are withheld",
					"tenant", e.Tenant.String(), "event_id", e.ID.String(), "reason", reason(err))
			}
		case err != nil:
			return nil, fmt.Errorf("event %s: %w", e.ID, err)
		}
		if in.Patient != uuid.Nil {
			subjects[e.Tenant] = append(subjects[e.Tenant], in.Patient)
		}
		inputs[i] = in
	}
	erased := make(map[chartstream.TenantID]map[uuid.UUID]bool)
	for tenant, ids := range subjects {
		m, err := src.ErasedSubjects(ctx, tenant, ids)
		if err != nil {
			return nil, err
		}
		erased[tenant] = m
	}
	out := make([]pending, len(inputs))
	for i, in := range inputs {
		in.Erased = erased[in.Event.Tenant][in.Patient]
		msg, err := r.encode(r.d.deps.Rules.Deidentify(in))
		if err != nil {
			return nil, err
		}
		out[i] = pending{source: in.Event, msg: msg}
	}
	return out, nil
}

// patientOf finds the patient an event is about, as its rule says:
// uuid.Nil when it names none.
func (r *deidRun) patientOf(ctx context.Context, e chartstream.Event) (uuid.UUID, error) {
	rule, ok := r.d.deps.Rules.Rule(e.Type)
	if !ok {
		return uuid.Nil, nil
	}
	switch rule.Patient {
	case deid.PatientIsStream:
		return e.Stream.ID, nil
	case deid.PatientInField:
		return patientField(e.Payload), nil
	case deid.PatientOfStream:
		if p, ok := r.patients[e.Stream.ID]; ok {
			return p, nil
		}
		first, err := r.d.deps.Events.ReadStream(ctx, e.Tenant, e.Stream, 1)
		if err != nil {
			return uuid.Nil, fmt.Errorf("first event of stream %s: %w", e.Stream.ID, err)
		}
		var p uuid.UUID
		if len(first) > 0 {
			p = patientField(first[0].Payload)
		}
		if len(r.patients) > 100_000 {
			clear(r.patients)
		}
		r.patients[e.Stream.ID] = p
		return p, nil
	}
	return uuid.Nil, nil
}

// patientField reads the payload's patient id; uuid.Nil when absent.
func patientField(payload json.RawMessage) uuid.UUID {
	var v struct {
		PatientID uuid.UUID `json:"patient_id"`
	}
	_ = json.Unmarshal(payload, &v)
	return v.PatientID
}

// loop de-identifies what arrives and checks the acknowledgements as they
// come, until ctx ends or something fails. A batch goes out as soon as it
// arrives, behind the messages still in flight: no timer, and no waiting
// for one batch's acknowledgements before the next.
func (r *deidRun) loop(ctx context.Context, incoming <-chan jetstream.Msg) error {
	for {
		var ok <-chan *jetstream.PubAck
		var failed <-chan error
		var timeout <-chan time.Time
		if f := r.oldest(); f != nil {
			ok, failed, timeout = f.future.Ok(), f.future.Err(), time.After(time.Until(f.at.Add(r.d.cfg.AckTimeout)))
		}
		var err error
		select {
		case m := <-incoming:
			err = r.batch(ctx, drain(m, incoming, r.d.cfg.MaxInFlight))
		case ack := <-ok:
			err = r.onAck(ack)
		case perr := <-failed:
			err = fmt.Errorf("publish de-identified event: %w", perr)
		case <-timeout:
			err = fmt.Errorf("no acknowledgement within %s", r.d.cfg.AckTimeout)
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err == nil {
			err = r.saveCheckpoint(ctx)
		}
		if err != nil {
			return err
		}
	}
}

// drain takes first and whatever else has arrived, up to max.
func drain(first jetstream.Msg, in <-chan jetstream.Msg, max int) []jetstream.Msg {
	batch := []jetstream.Msg{first}
	for len(batch) < max {
		select {
		case m := <-in:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

func loadDeidCheckpoint(ctx context.Context, kv jetstream.KeyValue, name string) (deidCheckpoint, error) {
	var cp deidCheckpoint
	entry, err := kv.Get(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return cp, nil
	case err != nil:
		return cp, fmt.Errorf("load de-identifier checkpoint: %w", err)
	}
	if err := json.Unmarshal(entry.Value(), &cp); err != nil {
		return cp, fmt.Errorf("de-identifier checkpoint: %w", err)
	}
	return cp, nil
}
