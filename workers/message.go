package workers

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
)

// Headers of every event message on JetStream. Consumers can route and
// filter on them without decoding the body; the body is the whole event
// (chartstream.Event as JSON, PHI still sealed).
const (
	HeaderTenant        = "Chartstream-Tenant"
	HeaderStreamType    = "Chartstream-Stream-Type"
	HeaderStreamID      = "Chartstream-Stream-Id"
	HeaderVersion       = "Chartstream-Version"
	HeaderEventType     = "Chartstream-Event-Type"
	HeaderSchemaVersion = "Chartstream-Schema-Version"
	HeaderPosition      = "Chartstream-Position"
	HeaderTxID          = "Chartstream-Txid"
	HeaderCorrelationID = "Chartstream-Correlation-Id"
	// HeaderPrevTxID and HeaderPrevPosition are the cursor of the tenant's
	// previous event (0 and 0 before its first), so a consumer can tell
	// whether it missed one of the tenant's events.
	HeaderPrevTxID     = "Chartstream-Prev-Txid"
	HeaderPrevPosition = "Chartstream-Prev-Position"
	// HeaderSignature is the relay's Ed25519 signature (internal/signing)
	// over signedContent: consumers refuse a message without a good one.
	HeaderSignature = "Chartstream-Signature"
)

// signedContent is what the relay signs of a message: its event id, the
// headers consumers act on, and the body (the event).
func signedContent(h nats.Header, data []byte) []byte {
	b := []byte("chartstream-event-v1")
	for _, name := range []string{nats.MsgIdHdr, HeaderTenant, HeaderTxID, HeaderPosition, HeaderPrevTxID, HeaderPrevPosition} {
		b = append(append(b, 0), h.Get(name)...)
	}
	return append(append(b, 0), data...)
}

// Subject is where an event is published:
// <prefix>.<tenant_id>.<stream_type>.<event_type>. Event types contain dots,
// so "clinical.<tenant>.patient.>" selects one tenant's patient events.
func Subject(prefix string, e chartstream.Event) string {
	return prefix + "." + e.Tenant.String() + "." + e.Stream.Type + "." + e.Type
}

// TenantSubjects is the filter for every event of one tenant.
func TenantSubjects(prefix string, tenant chartstream.TenantID) string {
	return prefix + "." + tenant.String() + ".>"
}

// EncodeMessage builds the JetStream message for a committed event read
// from the store (PHI sealed as stored), as the relay publishes it.
func EncodeMessage(prefix string, e chartstream.Event) (*nats.Msg, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	m := nats.NewMsg(Subject(prefix, e))
	m.Data = body
	h := m.Header
	h.Set(nats.MsgIdHdr, e.ID.String())
	h.Set(HeaderTenant, e.Tenant.String())
	h.Set(HeaderStreamType, e.Stream.Type)
	h.Set(HeaderStreamID, e.Stream.ID.String())
	h.Set(HeaderVersion, strconv.FormatInt(e.Version, 10))
	h.Set(HeaderEventType, e.Type)
	h.Set(HeaderSchemaVersion, strconv.Itoa(e.SchemaVersion))
	h.Set(HeaderPosition, strconv.FormatInt(e.Position, 10))
	h.Set(HeaderTxID, strconv.FormatInt(e.TxID, 10))
	if e.Metadata.CorrelationID != "" {
		h.Set(HeaderCorrelationID, e.Metadata.CorrelationID)
	}
	return m, nil
}

// setPrevious records on m the cursor of the tenant's event before m's.
func setPrevious(m *nats.Msg, prev eventstore.Cursor) {
	m.Header.Set(HeaderPrevTxID, strconv.FormatInt(prev.TxID, 10))
	m.Header.Set(HeaderPrevPosition, strconv.FormatInt(prev.Position, 10))
}

// DecodeMessage reads an event message published by the relay. The event's
// PHI is still sealed; open it with the event store's Open. Errors:
// EINVALID for a body that is not JSON or names no event (no tenant, type,
// version or schema version).
func DecodeMessage(data []byte) (chartstream.Event, error) {
	var e chartstream.Event
	if err := json.Unmarshal(data, &e); err != nil {
		return e, &chartstream.Error{Code: chartstream.EINVALID, Message: "event message is not an event's JSON", Err: err}
	}
	if e.Tenant.IsZero() || e.Type == "" || e.Version < 1 || e.SchemaVersion < 1 {
		return e, chartstream.Errorf(chartstream.EINVALID, "event message names no event")
	}
	return e, nil
}

// cursorOf reads the gap-free cursor from a message's headers.
func cursorOf(h nats.Header) (eventstore.Cursor, bool) {
	return cursorHeaders(h, HeaderTxID, HeaderPosition)
}

// cursorHeaders reads a cursor from two headers: decimal, non-negative.
func cursorHeaders(h nats.Header, txid, position string) (eventstore.Cursor, bool) {
	tx, err1 := strconv.ParseInt(h.Get(txid), 10, 64)
	pos, err2 := strconv.ParseInt(h.Get(position), 10, 64)
	if err1 != nil || err2 != nil || tx < 0 || pos < 0 {
		return eventstore.Cursor{}, false
	}
	return eventstore.Cursor{TxID: tx, Position: pos}, true
}

// received is a message as the projector receives it.
type received interface {
	ackable
	Headers() nats.Header
	Metadata() (*jetstream.MsgMetadata, error)
}

// parseDelivery reads a message's tenant, cursor and predecessor. A message
// without cursor headers (published by hand, or by an older relay) gives
// them in its body; one with neither names no event the projector can
// place and is an error.
func parseDelivery(m received) (tenant string, d *delivery, err error) {
	meta, err := m.Metadata()
	if err != nil {
		return "", nil, chartstream.Errorf(chartstream.EINVALID, "not a JetStream message")
	}
	d = &delivery{seq: meta.Sequence.Stream, msg: m}
	h := m.Headers()
	t, err := chartstream.ParseTenantID(h.Get(HeaderTenant))
	c, ok := cursorOf(h)
	if err != nil || !ok || c.Position == 0 {
		e, decodeErr := DecodeMessage(m.Data())
		if decodeErr != nil || e.Position < 1 || e.TxID < 0 {
			return "", nil, chartstream.Errorf(chartstream.EINVALID, "the message names no event")
		}
		t, c = e.Tenant, eventstore.CursorOf(e)
	}
	d.cursor = c
	d.prev, d.hasPrev = cursorHeaders(h, HeaderPrevTxID, HeaderPrevPosition)
	return t.String(), d, nil
}
