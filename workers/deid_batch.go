package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
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
	// source is the last source sequence done with; lastSeq the
	// stream's last sequence.
	source, lastSeq uint64
	// skip counts source messages already published (see runOnce).
	skip uint64
	// prev is each tenant's last de-identified sequence, looked up on
	// first use.
	prev map[chartstream.TenantID]uint64
	// patients caches the patient of encounter streams.
	patients map[uuid.UUID]uuid.UUID
	// savedAt is when the checkpoint was last saved.
	savedAt time.Time
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
	if err := r.publish(ctx, out); err != nil {
		return err
	}
	if time.Since(r.savedAt) < deidCheckpointEvery {
		return nil
	}
	body, _ := json.Marshal(deidCheckpoint{Source: r.source, Deid: r.lastSeq})
	if _, err := r.kv.Put(ctx, r.d.cfg.Name, body); err != nil {
		return fmt.Errorf("save de-identifier checkpoint: %w", err)
	}
	r.savedAt = time.Now()
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

// encode builds a de-identified message.
func (r *deidRun) encode(m deid.Message) (*nats.Msg, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode de-identified event: %w", err)
	}
	msg := nats.NewMsg(r.d.cfg.SubjectPrefix + "." + m.Tenant.String() + "." + m.Stream.Type + "." + m.Type)
	msg.Data = body
	if m.EventID != "" {
		msg.Header.Set(nats.MsgIdHdr, m.EventID)
	}
	msg.Header.Set(HeaderTenant, m.Tenant.String())
	msg.Header.Set(HeaderEventType, m.Type)
	msg.Header.Set(HeaderSchemaVersion, strconv.Itoa(m.SchemaVersion))
	return msg, nil
}

// publish publishes the batch pipelined, each message expecting its
// predecessor's sequence, and checks the acknowledgements in order.
func (r *deidRun) publish(ctx context.Context, out []pending) error {
	if err := r.previous(ctx, out); err != nil {
		return err
	}
	futures := make([]jetstream.PubAckFuture, len(out))
	prev := make(map[chartstream.TenantID]uint64)
	for i, p := range out {
		tenant := p.source.Tenant
		last, ok := prev[tenant]
		if !ok {
			last = r.prev[tenant]
		}
		p.msg.Header.Set(HeaderDeidPrev, strconv.FormatUint(last, 10))
		prev[tenant] = r.lastSeq + uint64(i) + 1
		p.msg.Header.Set(HeaderSignature, r.d.deps.Signer.Sign(DeidSignedContent(p.msg.Header, p.msg.Data)))
		var err error
		futures[i], err = r.d.deps.JetStream.PublishMsgAsync(p.msg, jetstream.WithExpectLastSequence(r.lastSeq+uint64(i)),
			jetstream.WithRetryAttempts(0), jetstream.WithStallWait(r.d.cfg.AckTimeout))
		if err != nil {
			return fmt.Errorf("publish de-identified event: %w", err)
		}
	}
	timeout := time.NewTimer(r.d.cfg.AckTimeout)
	defer timeout.Stop()
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if want := r.lastSeq + uint64(i) + 1; ack.Sequence != want || ack.Duplicate {
				return fmt.Errorf("de-identified event stored as sequence %d (duplicate %t), expected %d", ack.Sequence, ack.Duplicate, want)
			}
			if r.d.deps.Published != nil {
				r.d.deps.Published(DeidentifiedParams{Source: out[i].source, Sequence: ack.Sequence, AckedAt: time.Now()})
			}
		case err := <-f.Err():
			return fmt.Errorf("publish de-identified event: %w", err)
		case <-timeout.C:
			return fmt.Errorf("no acknowledgement within %s", r.d.cfg.AckTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.lastSeq += uint64(len(out))
	for t, seq := range prev {
		r.prev[t] = seq
	}
	return nil
}

// previous looks up the last de-identified sequence of the batch's tenants
// this run has not published for yet.
func (r *deidRun) previous(ctx context.Context, out []pending) error {
	for _, p := range out {
		tenant := p.source.Tenant
		if _, known := r.prev[tenant]; known {
			continue
		}
		last, err := r.stream.GetLastMsgForSubject(ctx, r.d.cfg.SubjectPrefix+"."+tenant.String()+".>")
		switch {
		case err == nil:
			r.prev[tenant] = last.Sequence
		case errors.Is(err, jetstream.ErrMsgNotFound):
			r.prev[tenant] = 0
		default:
			return fmt.Errorf("tenant's last de-identified message: %w", err)
		}
	}
	return nil
}

// DeidSignedContent is what the de-identifier signs of a message: its id,
// tenant, predecessor and body, under a label of its own so that no raw
// message's signature holds for a de-identified one or the reverse.
func DeidSignedContent(h nats.Header, data []byte) []byte {
	b := []byte("chartstream-deid-v1")
	for _, name := range []string{nats.MsgIdHdr, HeaderTenant, HeaderDeidPrev} {
		b = append(append(b, 0), h.Get(name)...)
	}
	return append(append(b, 0), data...)
}
