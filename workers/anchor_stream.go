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
	"github.com/chartstream/chartstream/eventstore"
)

// The anchors' defaults.
const (
	// DefaultAnchorStream is the JetStream stream of signed checkpoints.
	DefaultAnchorStream = "CLINICAL_ANCHORS"
	// DefaultAnchorSubjectPrefix starts every checkpoint's subject,
	// "<prefix>.<tenant id>".
	DefaultAnchorSubjectPrefix = "anchors"
	// DefaultAnchorName names the anchor worker's lease and cursor.
	DefaultAnchorName = "anchors"
)

// AnchorStreamConfig configures CLINICAL_ANCHORS.
type AnchorStreamConfig struct {
	// Stream is the stream's name. Default "CLINICAL_ANCHORS".
	Stream string
	// SubjectPrefix starts the subjects. Default "anchors".
	SubjectPrefix string
	// Replicas of the stream: 1 on a single node, 3 in a cluster. Default 1.
	Replicas int
	// KeepPerTenant is how many of each tenant's newest checkpoints the
	// stream keeps (the table keeps them all). Default 1000.
	KeepPerTenant int64
}

func (c *AnchorStreamConfig) setDefaults() {
	if c.Stream == "" {
		c.Stream = DefaultAnchorStream
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultAnchorSubjectPrefix
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.KeepPerTenant == 0 {
		c.KeepPerTenant = 1000
	}
}

// AnchorStream publishes signed checkpoints on JetStream and reads each
// tenant's newest back: the copy the database owner cannot reach.
type AnchorStream struct {
	js  jetstream.JetStream
	cfg AnchorStreamConfig
}

// NewAnchorStream returns the stream's client. It panics on a nil js.
func NewAnchorStream(js jetstream.JetStream, cfg AnchorStreamConfig) *AnchorStream {
	if js == nil {
		panic("workers: NewAnchorStream without JetStream")
	}
	cfg.setDefaults()
	return &AnchorStream{js: js, cfg: cfg}
}

func (a *AnchorStream) subject(tenant chartstream.TenantID) string {
	return a.cfg.SubjectPrefix + "." + tenant.String()
}

// ensure creates the stream, or updates its configuration.
func (a *AnchorStream) ensure(ctx context.Context) error {
	_, err := a.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              a.cfg.Stream,
		Description:       "chartstream signed checkpoints, one subject per tenant",
		Subjects:          []string{a.cfg.SubjectPrefix + ".>"},
		Storage:           jetstream.FileStorage,
		Replicas:          a.cfg.Replicas,
		MaxMsgsPerSubject: a.cfg.KeepPerTenant,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		Duplicates:        10 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("ensure stream %s: %w", a.cfg.Stream, err)
	}
	return nil
}

// HeaderCheckpointLast carries a checkpoint's last event's cursor open
// ("<txid>.<position>"), unsigned, beside the body that signs it sealed:
// where verification stops comparing, read only inside the platform.
const HeaderCheckpointLast = "Chartstream-Checkpoint-Last"

// publish sends one checkpoint and waits for JetStream's acknowledgement.
// Its message id is the format, tenant and sequence, so a retry is stored
// once.
func (a *AnchorStream) publish(ctx context.Context, c eventstore.Checkpoint) error {
	body, err := json.Marshal(c)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(a.subject(c.Tenant))
	msg.Data = body
	msg.Header.Set(HeaderCheckpointLast, c.Last.String())
	// The id names the format too: a version 1 checkpoint of the same
	// number, published within the duplicate window before migration
	// 0013, must not make JetStream drop this one as its duplicate.
	if _, err := a.js.PublishMsg(ctx, msg, jetstream.WithMsgID("v2:"+c.Tenant.String()+":"+strconv.FormatInt(c.Seq, 10))); err != nil {
		return fmt.Errorf("publish checkpoint %d: %w", c.Seq, err)
	}
	return nil
}

// Latest returns the tenant's newest checkpoint on the stream, nil when it
// has none (or the stream does not exist yet). Its signature is the
// caller's to check.
func (a *AnchorStream) Latest(ctx context.Context, tenant chartstream.TenantID) (*eventstore.Checkpoint, error) {
	stream, err := a.js.Stream(ctx, a.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", a.cfg.Stream, err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, a.subject(tenant))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("last checkpoint on %s: %w", a.cfg.Stream, err)
	}
	var c eventstore.Checkpoint
	if err := json.Unmarshal(msg.Data, &c); err != nil || c.Tenant != tenant {
		// Unreadable or another tenant's: not a checkpoint of this
		// tenant, which verification reports as badly signed.
		return &eventstore.Checkpoint{Tenant: tenant, Seq: -1}, nil
	}
	// Without where it ends (a message not written by publish) it is as
	// unreadable: nothing could be compared with it.
	if c.Last, err = eventstore.ParseCursor(msg.Header.Get(HeaderCheckpointLast)); err != nil {
		return &eventstore.Checkpoint{Tenant: tenant, Seq: -1}, nil
	}
	return &c, nil
}
