package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/deid"
)

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

// flight is a message published and not yet acknowledged.
type flight struct {
	future jetstream.PubAckFuture
	seq    uint64
	at     time.Time
	source chartstream.Event
}

// publish publishes a batch pipelined behind whatever is in flight, each
// message expecting its predecessor's sequence; the acknowledgements are
// checked, in order, as they come (onAck).
func (r *deidRun) publish(ctx context.Context, out []pending) error {
	if err := r.previous(ctx, out); err != nil {
		return err
	}
	for _, p := range out {
		tenant := p.source.Tenant
		p.msg.Header.Set(HeaderDeidPrev, strconv.FormatUint(r.prev[tenant], 10))
		p.msg.Header.Set(HeaderSignature, r.d.deps.Signer.Sign(DeidSignedContent(p.msg.Header, p.msg.Data)))
		f, err := r.d.deps.JetStream.PublishMsgAsync(p.msg, jetstream.WithExpectLastSequence(r.published),
			jetstream.WithRetryAttempts(0), jetstream.WithStallWait(r.d.cfg.AckTimeout))
		if err != nil {
			return fmt.Errorf("publish de-identified event: %w", err)
		}
		r.published++
		r.prev[tenant] = r.published
		r.inflight = append(r.inflight, flight{future: f, seq: r.published, at: time.Now(), source: p.source})
	}
	return nil
}

// oldest is the oldest message in flight, nil when none is.
func (r *deidRun) oldest() *flight {
	if len(r.inflight) == 0 {
		return nil
	}
	return &r.inflight[0]
}

// onAck checks the oldest message's acknowledgement: stored as the
// sequence it expected, not as a duplicate.
func (r *deidRun) onAck(ack *jetstream.PubAck) error {
	f := r.inflight[0]
	if ack.Sequence != f.seq || ack.Duplicate {
		return fmt.Errorf("de-identified event stored as sequence %d (duplicate %t), expected %d", ack.Sequence, ack.Duplicate, f.seq)
	}
	r.inflight = r.inflight[1:]
	r.acked = f.seq
	if r.d.deps.Published != nil {
		r.d.deps.Published(DeidentifiedParams{Source: f.source, Sequence: ack.Sequence, AckedAt: time.Now()})
	}
	r.advance()
	return nil
}

// waitOldest waits for the oldest message's acknowledgement.
func (r *deidRun) waitOldest(ctx context.Context) error {
	f := r.oldest()
	timeout := time.NewTimer(time.Until(f.at.Add(r.d.cfg.AckTimeout)))
	defer timeout.Stop()
	select {
	case ack := <-f.future.Ok():
		return r.onAck(ack)
	case err := <-f.future.Err():
		return fmt.Errorf("publish de-identified event: %w", err)
	case <-timeout.C:
		return fmt.Errorf("no acknowledgement within %s", r.d.cfg.AckTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// advance moves the checkpoint over the batches whose messages are all
// acknowledged.
func (r *deidRun) advance() {
	for len(r.marks) > 0 && r.marks[0].Deid <= r.acked {
		r.done, r.marks = r.marks[0], r.marks[1:]
	}
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
