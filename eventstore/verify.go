package eventstore

import (
	"bytes"
	"context"
	"fmt"
	"hash"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
)

// BrokenEvent names the first event of a stream whose chain does not hold.
type BrokenEvent struct {
	Stream  chartstream.StreamRef `json:"stream"`
	Version int64                 `json:"version"`
	EventID uuid.UUID             `json:"event_id"`
	// Reason says what failed: "version gap" (the version before it is
	// missing), "broken link" (it does not name its predecessor's hash),
	// "hash mismatch" (its content does not match its hash).
	Reason string `json:"reason"`
}

// maxBroken caps the broken streams a report lists.
const maxBroken = 100

// VerifyParams says what Verify compares the data with.
type VerifyParams struct {
	// Anchor is the last event's cursor of a checkpoint the caller
	// trusts (its signature verified): the report's Anchored is the chain
	// recomputed up to and including it. Nil for none.
	Anchor *Cursor
	// Marks are cursors, ascending, at which the report's Marks take the
	// recomputed chain (the last events of older checkpoints, so that a
	// mismatch can be placed between two of them). None by default.
	Marks []Cursor
	// Progress, when set, is told how many events have been checked.
	Progress ProgressFn
}

// VerifyReport is what Verify recomputed from the data.
type VerifyReport struct {
	Streams, Events int64
	// Broken lists, per stream, the first event whose chain does not hold
	// (at most 100 streams); empty when every stream's chain holds.
	Broken []BrokenEvent
	// Anchored is the tenant's chain over the events up to the anchor
	// (all of them with no anchor), each event's hash recomputed from its
	// content and its stream's recomputed chain, never read.
	Anchored Chain
	// Unanchored counts the events after the anchor: committed since the
	// checkpoint was signed, so nothing vouches for them yet.
	Unanchored int64
	// OldestUncovered is the event recorded first of those the anchor does
	// not cover (all of them with no anchor); nil for none.
	OldestUncovered *EventRef
	// Marks are the chain at each of VerifyParams.Marks, in order.
	Marks []Mark
}

// ProgressFn is told how many of total events have been checked.
type ProgressFn func(done, total int64)

// Verify reads every event of the tenant once, in commit order, and
// recomputes each event's hash from its stored fields and its stream's
// previous event (naming, per stream, the first event that does not hold)
// and the tenant's running hash (Chain) up to the anchor. It trusts no
// stored hash. Whether the running hash and count match a checkpoint is
// the caller's to judge. An error is returned only when the check itself
// could not run.
func (s *Store) Verify(ctx context.Context, tenant chartstream.TenantID, p VerifyParams) (VerifyReport, error) {
	var report VerifyReport
	err := postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, readSetup); err != nil {
			return err
		}
		var total int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM events WHERE tenant_id = $1`, tenant).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+storedColumns+` FROM events e
			WHERE tenant_id = $1 ORDER BY e.txid, e.position`, tenant)
		if err != nil {
			return err
		}
		defer rows.Close()
		w := NewWalk(tenant, p)
		var e StoredEvent
		for rows.Next() {
			if err := scanStored(rows, tenant, &e); err != nil {
				return err
			}
			w.Add(&e)
			if n := w.report.Events; p.Progress != nil && (n%10000 == 0 || n == total) {
				p.Progress(n, total)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		report = w.Report()
		return nil
	})
	if err != nil {
		return report, fmt.Errorf("verify: %w", err)
	}
	return report, nil
}

// streamHead is what a walk in commit order knows of a stream.
type streamHead struct {
	version int64
	hash    Hash
	broken  bool
}

// chainCheck checks each stream's chain while events arrive in commit
// order, in which a stream's versions come in turn (migration 0006), for
// Walk.
type chainCheck struct {
	streams map[uuid.UUID]*streamHead
}

// newChainCheck returns a check that has seen no event.
func newChainCheck() *chainCheck { return &chainCheck{streams: make(map[uuid.UUID]*streamHead)} }

// Streams is how many streams the check has seen.
func (w *chainCheck) Streams() int64 { return int64(len(w.streams)) }

// Check recomputes e's hash from its stream's recomputed chain (h is
// reused) and returns it, and the stream's first break when e is it.
func (w *chainCheck) Check(e *StoredEvent, h hash.Hash) (Hash, *BrokenEvent) {
	head := w.streams[e.StreamID]
	if head == nil {
		head = &streamHead{}
		w.streams[e.StreamID] = head
	}
	var prev []byte
	if head.version > 0 {
		prev = head.hash
	}
	computed := e.ComputeHash(h, prev)
	reason := ""
	switch {
	case e.Version != head.version+1:
		reason = "version gap"
	case !bytes.Equal(e.PrevHash, prev):
		reason = "broken link"
	case !bytes.Equal(e.Hash, computed):
		reason = "hash mismatch"
	}
	head.version, head.hash = e.Version, computed
	if reason == "" || head.broken {
		return computed, nil
	}
	head.broken = true
	return computed, &BrokenEvent{Stream: chartstream.StreamRef{Type: e.StreamType, ID: e.StreamID}, Version: e.Version, EventID: e.EventID, Reason: reason}
}

// storedColumns are an event's stored fields in StoredEvent's order, for
// scanStored; the table must be aliased e. The byte columns come last.
const storedColumns = `e.txid::text::bigint, e.position, e.stream_type, e.stream_id, e.version, e.event_id, e.event_type,
	e.schema_version, e.subject_id, e.recorded_at, e.payload::text, e.metadata::text, e.phi, e.prev_hash, e.hash`

// storedBytes is how many of storedColumns, at the end, are bytes.
const storedBytes = 5

// readSetup is what a long read of events sets for its transaction: no
// statement timeout (a large tenant takes longer than the app role's), and
// no JIT, which compiles the per-row expressions for a second or more
// before the first row, and then saves nothing on them.
const readSetup = `SET LOCAL statement_timeout = 0; SET LOCAL jit = off`

// scanStored scans storedColumns (and any dests after them, none of them
// bytes) into e. Its byte fields alias the row's buffer, valid until the
// next row: a 1,000,000-event walk copies no payload it does not keep.
func scanStored(rows pgx.Rows, tenant chartstream.TenantID, e *StoredEvent, more ...any) error {
	var stream, id, subject pgtype.UUID
	var recorded time.Time
	dests := make([]any, 0, 16+len(more))
	dests = append(dests, &e.TxID, &e.Position, &e.StreamType, &stream, &e.Version, &id, &e.EventType, &e.SchemaVersion, &subject, &recorded)
	first := len(dests)
	for range storedBytes {
		dests = append(dests, nil) // read raw below
	}
	dests = append(dests, more...)
	if err := rows.Scan(dests...); err != nil {
		return err
	}
	raw, fields := rows.RawValues(), rows.FieldDescriptions()
	for i, dst := range []*[]byte{&e.Payload, &e.Metadata, &e.PHI, (*[]byte)(&e.PrevHash), (*[]byte)(&e.Hash)} {
		col := first + i
		if fields[col].Format != pgx.BinaryFormatCode && i >= 2 {
			return fmt.Errorf("event bytes in text format (column %d)", col)
		}
		*dst = raw[col]
	}
	e.Tenant, e.StreamID, e.EventID = tenant, stream.Bytes, id.Bytes
	e.Subject = uuid.NullUUID{UUID: subject.Bytes, Valid: subject.Valid}
	e.RecordedMicros = recorded.UnixMicro()
	return nil
}
