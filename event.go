package chartstream

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Expected versions with a special meaning for an append. Any other
// non-negative value is the exact version the stream must be at.
const (
	// AnyVersion appends whatever the stream's current version is.
	AnyVersion int64 = -1
	// NoStream requires that the stream does not exist yet.
	NoStream int64 = 0
)

// StreamRef names one event stream (one aggregate instance) within a tenant.
// The same ID may exist in two tenants; they are different streams.
type StreamRef struct {
	// Type is the aggregate type, e.g. "patient", "encounter".
	Type string `json:"type"`
	// ID is the aggregate's id.
	ID uuid.UUID `json:"id"`
}

// Metadata is recorded with every event: who did it and why. It holds no PHI.
type Metadata struct {
	Actor         string   `json:"actor,omitempty"`
	Roles         []string `json:"roles,omitempty"`
	CorrelationID string   `json:"correlation_id,omitempty"`
	CausationID   string   `json:"causation_id,omitempty"`
	RequestID     string   `json:"request_id,omitempty"`
	Client        string   `json:"client,omitempty"`
	// CommandID identifies a command that may be retried (a request with
	// an Idempotency-Key): a UUID the ids of its events and of what it
	// creates derive from, so a retry finds what the first attempt
	// recorded instead of recording it again.
	CommandID string `json:"command_id,omitempty"`
	// TraceParent is the W3C trace context (a traceparent value) of the
	// write that recorded the event, when tracing is on: the relay
	// publishes later, from another process, and continues the request's
	// trace from it. Ids only, never PHI.
	TraceParent string `json:"traceparent,omitempty"`
}

// EventSpec describes one event type to the event store. Aggregates declare
// their specs next to their event payloads; the event store refuses types it
// was not given.
type EventSpec struct {
	// Type is the stable type name, e.g. "patient.registered". Never derived
	// by reflection: renaming a Go type must not rename stored events.
	Type string
	// SchemaVersion is the current version of the payload's shape. Older
	// stored versions are brought up to it by upcasters on read.
	SchemaVersion int
	// PHI lists the top-level payload fields that hold protected health
	// information (names, birth dates, contact details, free text). They
	// are encrypted at rest under the data subject's key.
	PHI []string
	// Subject is the top-level payload field holding the id (UUID) of the
	// patient whose key encrypts the PHI. Empty means the stream id.
	Subject string
	// Payload is a zero value of the payload's Go type, from which the
	// event's JSON Schema is generated for consumers (/asyncapi.json). The
	// store does not use it.
	Payload any
}

// NewEvent is an event about to be appended.
type NewEvent struct {
	// ID is the event id; a zero value is replaced by a random one.
	ID uuid.UUID
	// Type must be a registered EventSpec type.
	Type string
	// Payload is the event's JSON body (PHI fields in the clear; the store
	// encrypts them).
	Payload json.RawMessage
	// Metadata says who did it and why.
	Metadata Metadata
	// Claims are unique values this event reserves (see UniqueClaim).
	Claims []UniqueClaim
}

// Event is a recorded event as read back from the store, with PHI fields
// decrypted (or listed in Erased when the subject's key was destroyed).
type Event struct {
	// Position is the event's global position, unique across tenants.
	// It is assigned at insert, so it is not commit order.
	Position int64 `json:"position"`
	// TxID is the id of the transaction that wrote the event. (TxID,
	// Position) orders events by commit without gaps (eventstore.Cursor).
	TxID          int64           `json:"txid"`
	Tenant        TenantID        `json:"tenant_id"`
	Stream        StreamRef       `json:"stream"`
	Version       int64           `json:"version"`
	ID            uuid.UUID       `json:"id"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	Payload       json.RawMessage `json:"payload"`
	Metadata      Metadata        `json:"metadata"`
	RecordedAt    time.Time       `json:"recorded_at"`
	// Sealed is the event's PHI as stored, still encrypted: set on events
	// read for transport (ReadAll, the relay, JetStream messages) and nil
	// once the PHI has been opened into Payload.
	Sealed *SealedPHI `json:"sealed,omitempty"`
	// Erased names the PHI fields that could not be decrypted because the
	// data subject's key was destroyed (crypto-shredding). They are null
	// in Payload.
	Erased []string `json:"erased,omitempty"`
}

// SealedPHI is an event's PHI fields as stored: an AES-256-GCM ciphertext
// under the data subject's key.
type SealedPHI struct {
	// Subject is the patient whose data key sealed the PHI.
	Subject uuid.UUID `json:"subject"`
	// Ciphertext is the sealed JSON object of PHI fields.
	Ciphertext []byte `json:"ciphertext"`
}

// UniqueClaim reserves a value that must be unique within a tenant and scope
// (for example a patient's MRN), atomically with the append that carries it.
// A value already claimed by another stream makes the append fail with
// ECONFLICT and write nothing.
type UniqueClaim struct {
	// Scope names the kind of value, e.g. "patient.mrn".
	Scope string
	// Value is the value to reserve. It is stored only as a keyed hash.
	Value string
}

// Append is one stream's part of a write to the event store: the events to
// append to it (none, to only check it) and the condition it must meet.
// One write's appends commit together or not at all.
type Append struct {
	Stream StreamRef
	// Expected is the version the stream must be at: NoStream for a new
	// stream, a version, or AnyVersion for whatever version it is at.
	Expected int64
	// Unless refuses the write (ECONFLICT) when, after version Since, the
	// stream gained an event of one of these types. With AnyVersion it
	// lets a decision taken at version Since stand when other writers
	// appended only events the decision does not depend on: the write
	// conflicts on what matters, never on mere concurrency.
	Since  int64
	Unless []string
	Events []NewEvent
}

// CommandResult is what a successful command returns.
type CommandResult struct {
	// ID is what the command created or changed: the patient, the
	// observation, the order.
	ID uuid.UUID `json:"id"`
	// Version is the command's stream's version after it; an API caller
	// sends it back as If-Match.
	Version int64 `json:"version"`
	// LastEvent is the id of the last event written, nil when the command
	// changed nothing: the API's consistency token names it, so a later
	// read can wait until the read models have applied it.
	LastEvent uuid.UUID `json:"-"`
	// Position is the global position of the last event written. It stays
	// inside the platform: shown to a tenant, global positions would
	// measure every other tenant's writes.
	Position int64 `json:"-"`
}

// Snapshot is an aggregate's state at a version, so a long stream need not
// be replayed from its start. State is the aggregate's own encoding; the
// event store seals it like PHI, since state may hold PHI.
type Snapshot struct {
	Version int64
	// SchemaVersion is the aggregate's state format: a loader that does
	// not know it ignores the snapshot and replays.
	SchemaVersion int
	State         []byte
}

// RecordedEvent says where an event was recorded.
type RecordedEvent struct {
	ID       uuid.UUID
	Stream   StreamRef
	Version  int64
	Position int64
}

// AppendResult is what a successful append returns.
type AppendResult struct {
	// Version is the stream's version after the append.
	Version int64
	// Positions are the global positions of the appended events, in order.
	Positions []int64
}
