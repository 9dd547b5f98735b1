package workers

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

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
)

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

// DecodeMessage reads an event message published by the relay. The event's
// PHI is still sealed; open it with the event store's Open.
func DecodeMessage(data []byte) (chartstream.Event, error) {
	var e chartstream.Event
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("decode event message: %w", err)
	}
	if e.Tenant.IsZero() || e.Type == "" || e.Version < 1 {
		return e, fmt.Errorf("decode event message: not an event")
	}
	return e, nil
}

// cursorOf reads the gap-free cursor from a message's headers.
func cursorOf(h nats.Header) (eventstore.Cursor, bool) {
	tx, err1 := strconv.ParseInt(strings.TrimSpace(h.Get(HeaderTxID)), 10, 64)
	pos, err2 := strconv.ParseInt(strings.TrimSpace(h.Get(HeaderPosition)), 10, 64)
	if err1 != nil || err2 != nil {
		return eventstore.Cursor{}, false
	}
	return eventstore.Cursor{TxID: tx, Position: pos}, true
}
