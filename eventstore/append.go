package eventstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
)

// appendAnySQL appends at whatever version the stream is (AnyVersion): it
// reads the stream's head and inserts the events at the following versions,
// and reserves the unique claims only if the events went in. The chain
// trigger links each event to its predecessor; a concurrent append to the
// same stream fails on the (tenant, stream, version) key. Every row reports
// the head and whether the tenant exists (events has no foreign key to
// tenants, see migration 0002).
const appendAnySQL = `
WITH head AS (
	SELECT coalesce(max(version), 0) AS v, EXISTS (SELECT 1 FROM tenants WHERE id = $1) AS known
	FROM events WHERE tenant_id = $1 AND stream_id = $3
), ins AS (
	INSERT INTO events (tenant_id, stream_type, stream_id, version, event_id, event_type, schema_version, payload, phi, subject_id, metadata)
	SELECT $1, $2, $3, head.v + e.ord, e.event_id, e.event_type, e.schema_version, e.payload, e.phi, e.subject_id, e.metadata
	FROM head, unnest($4::uuid[], $5::text[], $6::int[], $7::jsonb[], $8::bytea[], $9::uuid[], $10::jsonb[])
		WITH ORDINALITY AS e(event_id, event_type, schema_version, payload, phi, subject_id, metadata, ord)
	WHERE head.known AND $11::bigint = -1
	ORDER BY e.ord
	RETURNING position, version
), claims AS (
	INSERT INTO unique_claims (tenant_id, scope, value_hash, stream_id)
	SELECT $1, c.scope, c.value_hash, $3 FROM unnest($12::text[], $13::bytea[]) AS c(scope, value_hash)
	WHERE EXISTS (SELECT 1 FROM ins)
)
SELECT head.known, ins.position, ins.version FROM head LEFT JOIN ins ON true ORDER BY ins.version`

// appendAtSQL appends at an expected version without reading the head:
// the (tenant, stream, version) key refuses a stream already past it, and
// the chain trigger refuses a gap (a stream not yet at it). An unknown
// tenant inserts nothing. The claims follow in a second statement of the
// same implicit transaction (see postgres.InTenantBatch).
const appendAtSQL = `
INSERT INTO events (tenant_id, stream_type, stream_id, version, event_id, event_type, schema_version, payload, phi, subject_id, metadata)
SELECT $1, $2, $3, $11::bigint + e.ord, e.event_id, e.event_type, e.schema_version, e.payload, e.phi, e.subject_id, e.metadata
FROM unnest($4::uuid[], $5::text[], $6::int[], $7::jsonb[], $8::bytea[], $9::uuid[], $10::jsonb[])
	WITH ORDINALITY AS e(event_id, event_type, schema_version, payload, phi, subject_id, metadata, ord)
WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $1)
ORDER BY e.ord
RETURNING true, position, version`

// appendOneSQL is appendAtSQL for the commonest append, a single event:
// the same checks without unnesting arrays, a quarter cheaper.
const appendOneSQL = `
INSERT INTO events (tenant_id, stream_type, stream_id, version, event_id, event_type, schema_version, payload, phi, subject_id, metadata)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $1)
RETURNING true, position, version`

const claimSQL = `INSERT INTO unique_claims (tenant_id, scope, value_hash, stream_id)
SELECT $1, c.scope, c.value_hash, $2 FROM unnest($3::text[], $4::bytea[]) AS c(scope, value_hash)`

// Append appends events to a stream atomically, in one round trip.
// Concurrent appends of a tenant may share that round trip and its
// transaction (see group.go); each still succeeds or fails on its own.
//
// expectedVersion is the version the stream must be at (chartstream.NoStream
// for a new stream) or chartstream.AnyVersion. A stream at another version
// returns ECONFLICT and nothing is written; so does a unique claim already
// held, or an event id already recorded. A ctx that ends before the append
// is sent returns ctx's error with nothing written; once sent, Append
// waits for the outcome. Bad input returns EINVALID (unknown
// event type, invalid UTF-8, not a JSON object, a payload tenant_id that is
// not the append's tenant) or ETOOLARGE; an unknown tenant ENOTFOUND.
func (s *Store) Append(ctx context.Context, tenant chartstream.TenantID, stream chartstream.StreamRef, expectedVersion int64, events ...chartstream.NewEvent) (chartstream.AppendResult, error) {
	if err := s.checkAppend(tenant, stream, expectedVersion, events); err != nil {
		return chartstream.AppendResult{}, err
	}
	n := len(events)
	ids, types, versions := make([]uuid.UUID, n), make([]string, n), make([]int32, n)
	payloads, sealed, subjects, metas := make([]json.RawMessage, n), make([][]byte, n), make([]pgtype.UUID, n), make([]json.RawMessage, n)
	var claimScopes []string
	var claimHashes [][]byte
	for i, e := range events {
		spec, err := s.registry.spec(e.Type)
		if err != nil {
			return chartstream.AppendResult{}, err
		}
		if err := s.checkPayload(tenant, e.Payload); err != nil {
			return chartstream.AppendResult{}, err
		}
		ids[i] = e.ID
		if ids[i] == uuid.Nil {
			// Time-ordered ids keep the event_id index append-mostly.
			ids[i] = uuid.Must(uuid.NewV7())
		}
		types[i], versions[i] = e.Type, int32(spec.SchemaVersion)
		clear, seal, err := s.seal(ctx, tenant, spec, stream, ids[i], e.Payload)
		if err != nil {
			return chartstream.AppendResult{}, err
		}
		payloads[i] = clear
		if seal != nil {
			sealed[i], subjects[i] = seal.Ciphertext, pgtype.UUID{Bytes: seal.Subject, Valid: true}
		}
		if metas[i], err = json.Marshal(e.Metadata); err != nil {
			return chartstream.AppendResult{}, fmt.Errorf("append: metadata: %w", err)
		}
		for _, c := range e.Claims {
			claimScopes = append(claimScopes, c.Scope)
			claimHashes = append(claimHashes, claimHash(c))
		}
	}

	p := &pendingAppend{tenant: tenant, events: n, done: make(chan appendOutcome, 1)}
	switch {
	case expectedVersion == chartstream.AnyVersion:
		p.queries = []query{{appendAnySQL, []any{tenant, stream.Type, stream.ID, ids, types, versions, payloads, sealed, subjects, metas, expectedVersion, claimScopes, claimHashes}}}
	case n == 1:
		one := &oneEvent{stream.Type, stream.ID, expectedVersion + 1, ids[0], types[0], versions[0], payloads[0], sealed[0], subjects[0], metas[0]}
		p.queries = []query{{appendOneSQL, one.args(tenant)}}
		if len(claimScopes) == 0 {
			p.one = one
		}
	default:
		p.queries = []query{{appendAtSQL, []any{tenant, stream.Type, stream.ID, ids, types, versions, payloads, sealed, subjects, metas, expectedVersion}}}
	}
	if expectedVersion != chartstream.AnyVersion && len(claimScopes) > 0 {
		p.queries = append(p.queries, query{claimSQL, []any{tenant, stream.ID, claimScopes, claimHashes}})
	}
	return s.appender.submit(ctx, p)
}

// appendError maps database errors by SQLSTATE and constraint name.
func appendError(err error) error {
	switch {
	case postgres.IsConstraintError(err, postgres.UniqueViolation, "events_stream_version"),
		postgres.IsConstraintError(err, postgres.CheckViolation, "events_version_contiguous"):
		return chartstream.Errorf(chartstream.ECONFLICT, "the stream is not at the expected version")
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

func (s *Store) checkAppend(tenant chartstream.TenantID, stream chartstream.StreamRef, expected int64, events []chartstream.NewEvent) error {
	var fields []chartstream.FieldError
	if tenant.IsZero() {
		fields = append(fields, chartstream.FieldError{Field: "tenant", Reason: "is required"})
	}
	if !streamTypePattern.MatchString(stream.Type) {
		fields = append(fields, chartstream.FieldError{Field: "stream.type", Reason: "must be a lowercase identifier"})
	}
	if stream.ID == uuid.Nil {
		fields = append(fields, chartstream.FieldError{Field: "stream.id", Reason: "is required"})
	}
	if expected < chartstream.AnyVersion {
		fields = append(fields, chartstream.FieldError{Field: "expected_version", Reason: "must be -1 (any), 0 (new stream) or a version"})
	}
	if len(events) == 0 || len(events) > s.cfg.MaxEventsPerAppend {
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

// claimHash is what unique_claims stores instead of the value itself.
func claimHash(c chartstream.UniqueClaim) []byte {
	h := sha256.New()
	h.Write([]byte(c.Scope))
	h.Write([]byte{0})
	h.Write([]byte(c.Value))
	return h.Sum(nil)
}
