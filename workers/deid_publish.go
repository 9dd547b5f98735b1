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
