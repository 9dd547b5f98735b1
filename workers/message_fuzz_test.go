package workers

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
)

// fuzzMsg is a JetStream message as the projector receives it.
type fuzzMsg struct {
	data []byte
	h    nats.Header
}

func (m fuzzMsg) Data() []byte         { return m.data }
func (m fuzzMsg) Ack() error           { return nil }
func (m fuzzMsg) Nak() error           { return nil }
func (m fuzzMsg) Headers() nats.Header { return m.h }
func (m fuzzMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: 7}}, nil
}

// wantInvalid fails unless err is an EINVALID *chartstream.Error.
func wantInvalid(t *testing.T, err error) {
	t.Helper()
	var e *chartstream.Error
	if !errors.As(err, &e) || e.Code != chartstream.EINVALID {
		t.Fatalf("error %v (%T), want an EINVALID *chartstream.Error", err, err)
	}
}

// fuzzHeaders reads "Name: value" lines.
func fuzzHeaders(s string) nats.Header {
	h := nats.Header{}
	for line := range strings.SplitSeq(s, "\n") {
		if name, value, ok := strings.Cut(line, ": "); ok {
			h.Add(name, value)
		}
	}
	return h
}

// FuzzDecodeMessage reads event messages as the projector does, the body
// with DecodeMessage and the headers with parseDelivery: never a panic; a
// refusal is an EINVALID *chartstream.Error; a decoded event names a
// tenant, a type, a version and a schema version, and re-encodes to a
// body that decodes equal; the message the relay would publish for it is
// delivered at the event's own place; a delivery names a tenant and a
// place in the store's order.
func FuzzDecodeMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, headers string) {
		tenant, d, err := parseDelivery(fuzzMsg{data, fuzzHeaders(headers)})
		if err != nil {
			wantInvalid(t, err)
		} else if _, perr := chartstream.ParseTenantID(tenant); perr != nil || d.cursor.Position < 1 || d.cursor.TxID < 0 {
			t.Fatalf("delivery of tenant %q at %+v", tenant, d.cursor)
		}
		e, err := DecodeMessage(data)
		if err != nil {
			wantInvalid(t, err)
			return
		}
		if e.Tenant.IsZero() || e.Type == "" || e.Version < 1 || e.SchemaVersion < 1 {
			t.Fatalf("decoded a message that names no event: %+v", e)
		}
		first, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
		e2, err := DecodeMessage(first)
		if err != nil {
			t.Fatalf("re-encoded %s refused: %v", first, err)
		}
		if second, _ := json.Marshal(e2); !bytes.Equal(first, second) {
			t.Fatalf("round trip turned %s into %s", first, second)
		}
		msg, err := EncodeMessage(DefaultSubjectPrefix, e)
		if err != nil {
			t.Fatal(err)
		}
		tenant, d, err = parseDelivery(fuzzMsg{msg.Data, msg.Header})
		switch {
		case e.Position < 1 || e.TxID < 0:
			if err == nil {
				t.Fatalf("event at %d/%d delivered at %+v", e.TxID, e.Position, d.cursor)
			}
		case err != nil || tenant != e.Tenant.String() || d.cursor != eventstore.CursorOf(e):
			t.Fatalf("the relay's message for %+v is delivered as %q %+v (%v)", e, tenant, d, err)
		}
	})
}
