package eventstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
)

// BrokenEvent names the first event whose chain does not hold.
type BrokenEvent struct {
	Stream  chartstream.StreamRef
	Version int64
	EventID uuid.UUID
	// Reason says what failed: "hash mismatch", "broken link", "version gap".
	Reason string
}

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Streams, Events int64
	// Broken is nil when every event verified.
	Broken *BrokenEvent
}

// ProgressFn is told how many of total events have been checked.
type ProgressFn func(done, total int64)

// Verify walks every stream of the tenant in version order and recomputes
// each event's hash from its stored fields and its predecessor's hash. It
// stops at the first event that does not verify and reports it; an error is
// returned only when the check itself could not run.
func (s *Store) Verify(ctx context.Context, tenant chartstream.TenantID, progress ProgressFn) (VerifyReport, error) {
	var report VerifyReport
	err := postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		// A large tenant takes longer than the app role's statement timeout.
		if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = 0`); err != nil {
			return err
		}
		var total int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM events WHERE tenant_id = $1`, tenant).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT stream_type, stream_id, version, event_id, event_type, schema_version,
				payload::text, phi, subject_id, metadata::text, (extract(epoch FROM recorded_at) * 1000000)::bigint, prev_hash, hash
			FROM events WHERE tenant_id = $1 ORDER BY stream_id, version`, tenant)
		if err != nil {
			return err
		}
		defer rows.Close()
		var prev struct {
			stream  uuid.UUID
			version int64
			hash    []byte
		}
		h := sha256.New()
		for rows.Next() {
			var r hashedRow
			if err := rows.Scan(&r.streamType, &r.streamID, &r.version, &r.eventID, &r.eventType, &r.schemaVersion,
				&r.payload, &r.phi, &r.subject, &r.metadata, &r.recordedMicros, &r.prevHash, &r.hash); err != nil {
				return err
			}
			if r.streamID != prev.stream {
				report.Streams++
				prev.stream, prev.version, prev.hash = r.streamID, 0, nil
			}
			report.Events++
			broken := func(reason string) error {
				report.Broken = &BrokenEvent{Stream: chartstream.StreamRef{Type: r.streamType, ID: r.streamID}, Version: r.version, EventID: r.eventID, Reason: reason}
				return nil
			}
			switch computed := r.computeHash(h, tenant, prev.hash); {
			case r.version != prev.version+1:
				return broken("version gap")
			case !bytes.Equal(r.prevHash, prev.hash):
				return broken("broken link")
			case !bytes.Equal(r.hash, computed):
				return broken("hash mismatch")
			default:
				prev.version, prev.hash = r.version, computed
			}
			if progress != nil && (report.Events%1000 == 0 || report.Events == total) {
				progress(report.Events, total)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return report, fmt.Errorf("verify: %w", err)
	}
	return report, nil
}

// hashedRow is an event's stored fields in the form the hash covers.
type hashedRow struct {
	streamType        string
	streamID, eventID uuid.UUID
	version           int64
	eventType         string
	schemaVersion     int32
	payload, metadata string
	phi               []byte
	subject           pgtype.UUID
	recordedMicros    int64
	prevHash, hash    []byte
}

// computeHash is the Go twin of chartstream_event_hash (migration 0002):
// SHA-256 over the previous hash and each field, length-prefixed.
func (r hashedRow) computeHash(h hash.Hash, tenant chartstream.TenantID, prev []byte) []byte {
	h.Reset()
	h.Write(prev)
	field := func(b []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	i64 := func(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }
	field(tenant[:])
	field([]byte(r.streamType))
	field(r.streamID[:])
	field(i64(r.version))
	field(r.eventID[:])
	field([]byte(r.eventType))
	field(binary.BigEndian.AppendUint32(nil, uint32(r.schemaVersion)))
	field([]byte(r.payload))
	field(r.phi)
	if r.subject.Valid {
		field(r.subject.Bytes[:])
	} else {
		field(nil)
	}
	field([]byte(r.metadata))
	field(i64(r.recordedMicros))
	return h.Sum(nil)
}
