package eventstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
)

// Append appends events to a stream atomically, in one round trip.
// Concurrent appends of a tenant may share that round trip and its
// transaction (see send.go); each still succeeds or fails on its own.
//
// expectedVersion is the version the stream must be at (chartstream.NoStream
// for a new stream) or chartstream.AnyVersion. A stream at another version
// returns ECONFLICT and nothing is written; so does a unique claim already
// held, or an event id already recorded. A ctx that ends before the append
// is sent returns ctx's error with nothing written; once sent, Append
// waits for the outcome, and when the database went away at the commit
// and stays away, ECOMMITUNKNOWN. Bad input returns EINVALID (unknown
// event type, invalid UTF-8, not a JSON object, a payload tenant_id that is
// not the append's tenant) or ETOOLARGE; an unknown tenant ENOTFOUND.
func (s *Store) Append(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, expectedVersion int64, events ...chartstream.NewEvent) (chartstream.AppendResult, error) {
	res, err := s.Write(ctx, tenant, chartstream.Append{Stream: stream, Expected: expectedVersion, Events: events})
	if err != nil {
		return chartstream.AppendResult{}, err
	}
	return res[0], nil
}

// Write appends to several streams of a tenant in one transaction: every
// append's condition holds (see chartstream.Append) and all events are
// recorded, or nothing is. Appends without events only check their stream,
// which stays locked until the commit, so no write to it can slip in
// between (a prescription checked against the patient's allergies). The
// results are per append, in order. Errors as Append's; the write must
// append at least one event.
func (s *Store) Write(ctx context.Context, tenant chartstream.TenantID, appends ...chartstream.Append) ([]chartstream.AppendResult, error) {
	w, err := s.prepare(ctx, tenant, appends)
	if err != nil {
		return nil, err
	}
	return s.writes.Submit(ctx, tenant, w.events, w)
}

// write is one Write, prepared for the database: every argument built,
// PHI sealed, ids fixed (so sending it again can never record it twice).
type write struct {
	tenant  chartstream.TenantID
	appends []prepared
	events  int
	// exclusive and shared are the stream locks it takes.
	exclusive, shared []int64
}

// prepared is one append of a write.
type prepared struct {
	append chartstream.Append
	rows   rows
	// claim scopes and value hashes, reserved with the events.
	claimScopes []string
	claimHashes [][]byte
}

// row is one event as the events table stores it: every INSERT variant
// takes its arguments from rows.
type row struct {
	streamType    string
	streamID      uuid.UUID
	version       int64 // 0 when the database computes it from the head
	eventID       uuid.UUID
	eventType     string
	schemaVersion int32
	payload       json.RawMessage
	phi           []byte
	subject       pgtype.UUID
	metadata      json.RawMessage
}

// rows are events in column arrays, for unnest.
type rows []row

// columns returns the rows' values column by column, in the order of
// insertRowsSQL's and insertCheckedSQL's unnest.
func (rs rows) columns() []any {
	n := len(rs)
	types, streams, versions, ids := make([]string, n), make([]uuid.UUID, n), make([]int64, n), make([]uuid.UUID, n)
	eventTypes, schemas, payloads := make([]string, n), make([]int32, n), make([]json.RawMessage, n)
	phis, subjects, metas := make([][]byte, n), make([]pgtype.UUID, n), make([]json.RawMessage, n)
	for i, r := range rs {
		types[i], streams[i], versions[i], ids[i] = r.streamType, r.streamID, r.version, r.eventID
		eventTypes[i], schemas[i], payloads[i] = r.eventType, r.schemaVersion, r.payload
		phis[i], subjects[i], metas[i] = r.phi, r.subject, r.metadata
	}
	return []any{types, streams, versions, ids, eventTypes, schemas, payloads, phis, subjects, metas}
}

// args are insertOneSQL's arguments for a single row.
func (r row) args(tenant chartstream.TenantID) []any {
	return []any{tenant, r.streamType, r.streamID, r.version, r.eventID, r.eventType, r.schemaVersion, r.payload, r.phi, r.subject, r.metadata}
}

// prepare checks a write, seals its PHI and builds its rows.
func (s *Store) prepare(ctx context.Context, tenant chartstream.TenantID, appends []chartstream.Append) (*write, error) {
	if err := s.checkWrite(tenant, appends); err != nil {
		return nil, err
	}
	w := &write{tenant: tenant, appends: make([]prepared, len(appends))}
	for i, a := range appends {
		p := prepared{append: a, rows: make(rows, len(a.Events))}
		for j, e := range a.Events {
			spec, err := s.registry.spec(e.Type)
			if err != nil {
				return nil, err
			}
			if err := s.checkPayload(tenant, e.Payload); err != nil {
				return nil, err
			}
			r := row{streamType: a.Stream.Type, streamID: a.Stream.ID, eventID: e.ID, eventType: e.Type, schemaVersion: int32(spec.SchemaVersion)}
			if r.eventID == uuid.Nil {
				// Time-ordered ids keep the event_id index append-mostly.
				r.eventID = uuid.Must(uuid.NewV7())
			}
			if a.Expected != chartstream.AnyVersion {
				r.version = a.Expected + int64(j) + 1
			}
			clear, seal, err := s.seal(ctx, tenant, spec, a.Stream, r.eventID, e.Payload)
			if err != nil {
				return nil, err
			}
			r.payload = clear
			if seal != nil {
				r.phi, r.subject = seal.Ciphertext, pgtype.UUID{Bytes: seal.Subject, Valid: true}
			}
			if r.metadata, err = json.Marshal(e.Metadata); err != nil {
				return nil, fmt.Errorf("append: metadata: %w", err)
			}
			for _, c := range e.Claims {
				key, err := s.tenantKey(ctx, tenant, claimsKeyPurpose)
				if err != nil {
					return nil, err
				}
				p.claimScopes = append(p.claimScopes, c.Scope)
				p.claimHashes = append(p.claimHashes, claimHash(key, c))
			}
			p.rows[j] = r
		}
		w.events += len(a.Events)
		key := streamLockKey(tenant, a.Stream.ID)
		if len(a.Events) > 0 {
			w.exclusive = append(w.exclusive, key)
		} else {
			w.shared = append(w.shared, key)
		}
		w.appends[i] = p
	}
	return w, nil
}

// streamLockKey is the advisory lock a write takes on a stream (migration
// 0006): a hash of the tenant and the stream id. Two streams sharing a key
// only wait for each other.
func streamLockKey(tenant chartstream.TenantID, stream uuid.UUID) int64 {
	h := fnv.New64a()
	h.Write(tenant[:])
	h.Write(stream[:])
	return int64(binary.BigEndian.Uint64(h.Sum(nil)))
}

// appendError maps database errors by SQLSTATE and constraint name.
func appendError(err error) error {
	switch {
	case postgres.IsConstraintError(err, postgres.UniqueViolation, "events_stream_version"),
		postgres.IsConstraintError(err, postgres.CheckViolation, "events_version_contiguous"),
		postgres.IsConstraintError(err, postgres.CheckViolation, "events_expected_version"):
		return &chartstream.Error{Code: chartstream.ECONFLICT, Message: "the stream is not at the expected version", Err: chartstream.ErrConcurrentWrite}
	case postgres.IsConstraintError(err, postgres.CheckViolation, "events_changed_since"):
		return &chartstream.Error{Code: chartstream.ECONFLICT, Message: "the stream changed in a way the decision depends on", Err: chartstream.ErrConcurrentWrite}
	case postgres.IsConstraintError(err, postgres.UniqueViolation, "unique_claims_pkey"):
		return chartstream.Errorf(chartstream.ECONFLICT, "a unique value in this request is already in use")
	case postgres.IsConstraintError(err, postgres.UniqueViolation, "events_event_id_key"):
		return chartstream.Errorf(chartstream.ECONFLICT, "an event with this id was already recorded")
	case postgres.IsConstraintError(err, postgres.CheckViolation, "events_stream_type_stable"):
		return chartstream.Errorf(chartstream.ECONFLICT, "the stream id belongs to a stream of another type")
	}
	if chartstream.ErrorCode(err) != chartstream.EINTERNAL {
		return err
	}
	return fmt.Errorf("append: %w", err)
}

// checkWrite refuses malformed appends before anything is sealed.
func (s *Store) checkWrite(tenant chartstream.TenantID, appends []chartstream.Append) error {
	var fields []chartstream.FieldError
	if tenant.IsZero() {
		fields = append(fields, chartstream.FieldError{Field: "tenant", Reason: "is required"})
	}
	events := 0
	seen := make(map[uuid.UUID]bool, len(appends))
	for _, a := range appends {
		if !streamTypePattern.MatchString(a.Stream.Type) {
			fields = append(fields, chartstream.FieldError{Field: "stream.type", Reason: "must be a lowercase identifier"})
		}
		if a.Stream.ID == uuid.Nil {
			fields = append(fields, chartstream.FieldError{Field: "stream.id", Reason: "is required"})
		}
		if seen[a.Stream.ID] {
			fields = append(fields, chartstream.FieldError{Field: "stream.id", Reason: "must not appear twice in one write"})
		}
		seen[a.Stream.ID] = true
		if a.Expected < chartstream.AnyVersion {
			fields = append(fields, chartstream.FieldError{Field: "expected_version", Reason: "must be -1 (any), 0 (new stream) or a version"})
		}
		if len(a.Unless) > 0 && a.Since < 0 {
			fields = append(fields, chartstream.FieldError{Field: "since", Reason: "must be a version"})
		}
		events += len(a.Events)
	}
	if events == 0 || events > s.cfg.MaxEventsPerAppend {
		fields = append(fields, chartstream.FieldError{Field: "events", Reason: fmt.Sprintf("must hold 1 to %d events", s.cfg.MaxEventsPerAppend)})
	}
	if len(fields) > 0 {
		return chartstream.Invalid(fields...)
	}
	return nil
}

// checkPayload refuses payloads that are too large, not UTF-8, not a JSON
// object, or tagged with another tenant. It never echoes the payload.
func (s *Store) checkPayload(tenant chartstream.TenantID, payload json.RawMessage) error {
	if len(payload) > s.cfg.MaxPayloadBytes {
		return chartstream.Errorf(chartstream.ETOOLARGE, "event payload is over %d bytes", s.cfg.MaxPayloadBytes)
	}
	if !utf8.Valid(payload) {
		return chartstream.Errorf(chartstream.EINVALID, "event payload is not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return chartstream.Errorf(chartstream.EINVALID, "event payload must be a JSON object")
	}
	var tagged struct {
		TenantID *string `json:"tenant_id"`
	}
	if err := json.Unmarshal(trimmed, &tagged); err == nil && tagged.TenantID != nil && *tagged.TenantID != tenant.String() {
		return chartstream.Errorf(chartstream.EINVALID, "event payload names another tenant")
	}
	return nil
}
