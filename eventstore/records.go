package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/postgres"
)

// RecordFilter selects a tenant's events for an export or a history. The
// zero filter selects every event.
type RecordFilter struct {
	// After resumes after this cursor (the last event a previous read
	// returned).
	After Cursor
	// UpTo, when set, ends the read with the event at this cursor: an
	// export of what a checkpoint covers, and no more.
	UpTo Cursor
	// Since and Until bound the recorded time: Since <= t < Until; zero
	// values leave that side open.
	Since, Until time.Time
	// StreamType and EventType, when set, must match exactly.
	StreamType, EventType string
	// Patient, when its ID is set, selects the patient's streams: its own
	// (Patient) and those (encounters, medication orders) whose first
	// event names its id in patient_id. The patient's stream must exist:
	// ENOTFOUND otherwise.
	Patient chartstream.StreamRef
	// Limit caps the events read; 0 reads all.
	Limit int
}

// Full reports whether the filter selects every event from the start (up
// to UpTo, when set), the only reads a checkpoint can vouch for as a whole.
func (f RecordFilter) Full() bool {
	return f.After == (Cursor{}) && f.Since.IsZero() && f.Until.IsZero() && f.StreamType == "" && f.EventType == "" &&
		f.Patient.ID == uuid.Nil && f.Limit == 0
}

// where renders the filter's conditions on events aliased e, with the
// tenant as $1, and the query's arguments. Only the conditions in use are
// written, so the plan fits each query (a generic plan with "$n IS NULL OR
// ..." would not use the patient's index). Rows are read only below the
// gap-free horizon (see ReadAll), so a read resumed after a cursor misses
// nothing that commits later.
func (f RecordFilter) where(tenant chartstream.TenantID) (string, []any) {
	args := []any{tenant}
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	conds := []string{"e.tenant_id = $1", "e.txid < pg_snapshot_xmin(pg_current_snapshot())"}
	if f.After != (Cursor{}) {
		conds = append(conds, fmt.Sprintf("(e.txid, e.position) > (%s::text::xid8, %s)", arg(strconv.FormatInt(f.After.TxID, 10)), arg(f.After.Position)))
	}
	if f.UpTo != (Cursor{}) {
		conds = append(conds, fmt.Sprintf("(e.txid, e.position) <= (%s::text::xid8, %s)", arg(strconv.FormatInt(f.UpTo.TxID, 10)), arg(f.UpTo.Position)))
	}
	if !f.Since.IsZero() {
		conds = append(conds, "e.recorded_at >= "+arg(f.Since))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "e.recorded_at < "+arg(f.Until))
	}
	if f.StreamType != "" {
		conds = append(conds, "e.stream_type = "+arg(f.StreamType))
	}
	if f.EventType != "" {
		conds = append(conds, "e.event_type = "+arg(f.EventType))
	}
	if f.Patient.ID != uuid.Nil {
		p := arg(f.Patient.ID)
		conds = append(conds, fmt.Sprintf(`e.stream_id IN (SELECT s.stream_id FROM events s WHERE s.tenant_id = $1 AND s.version = 1
			AND (s.stream_id = %[1]s OR s.payload ->> 'patient_id' = %[1]s::text))`, p))
	}
	sql := " WHERE " + strings.Join(conds, " AND ") + " ORDER BY e.txid, e.position"
	if f.Limit > 0 {
		sql += " LIMIT " + arg(f.Limit)
	}
	return sql, args
}

// CountRecords counts the events Records reads with f (for a progress
// bar).
func (s *Store) CountRecords(ctx context.Context, tenant chartstream.TenantID, f RecordFilter) (int64, error) {
	where, args := f.where(tenant)
	var n int64
	err := postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, readSetup); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT FROM events e`+where+`) AS selected`, args...).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("count records: %w", err)
	}
	return n, nil
}

// checkPatient returns ENOTFOUND unless the filter's patient stream
// exists (in the transaction's tenant).
func (f RecordFilter) checkPatient(ctx context.Context, tx pgx.Tx, tenant chartstream.TenantID) error {
	if f.Patient.ID == uuid.Nil {
		return nil
	}
	var known bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE tenant_id = $1 AND stream_id = $2 AND version = 1 AND stream_type = $3)`,
		tenant, f.Patient.ID, f.Patient.Type).Scan(&known); err != nil {
		return err
	}
	if !known {
		return chartstream.Errorf(chartstream.ENOTFOUND, "patient not found")
	}
	return nil
}

// Record is a stored event with its PHI opened for an auditor.
type Record struct {
	StoredEvent
	// Opened is the event's PHI fields as a JSON object, decrypted; nil
	// when it has none or they were erased.
	Opened json.RawMessage
	// Erased names the PHI fields of an event whose data subject's key
	// was destroyed (crypto-shredding).
	Erased []string
}

// RecordFn receives each record; the record is reused after it returns.
// An error stops the read.
type RecordFn func(*Record) error

// Records streams the tenant's events that the filter selects, in commit
// order, as stored and with their PHI opened, to fn, one row at a time:
// memory stays constant however many there are. Each data subject's key
// comes with its rows, so opening PHI costs no round trip.
func (s *Store) Records(ctx context.Context, tenant chartstream.TenantID, f RecordFilter, fn RecordFn) error {
	where, args := f.where(tenant)
	err := postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		if err := f.checkPatient(ctx, tx, tenant); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, readSetup); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+storedColumns+`, CASE WHEN e.phi IS NULL THEN NULL ELSE
				(SELECT k.wrapped FROM data_keys k WHERE k.tenant_id = e.tenant_id AND k.subject_id = e.subject_id) END
			FROM events e`+where, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		var r Record
		var wrapped []byte
		for rows.Next() {
			if err := scanStored(rows, tenant, &r.StoredEvent, &wrapped); err != nil {
				return err
			}
			if err := s.openRecord(ctx, &r, wrapped); err != nil {
				return err
			}
			if err := fn(&r); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	return wrapRead("records", err)
}

// wrapRead wraps a read's failure, keeping domain errors as they are.
func wrapRead(what string, err error) error {
	var domain *chartstream.Error
	if err == nil || errors.As(err, &domain) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// openRecord decrypts r's PHI with the subject's wrapped key as the read
// saw it: none (shredded) marks the PHI fields erased.
func (s *Store) openRecord(ctx context.Context, r *Record, wrapped []byte) error {
	r.Opened, r.Erased = nil, nil
	if r.PHI == nil {
		return nil
	}
	if wrapped == nil {
		spec, _ := s.registry.spec(r.EventType)
		_, erased, err := phi.Erase(r.Payload, spec.PHI)
		if err != nil {
			return fmt.Errorf("erase event %s: %w", r.EventID, err)
		}
		r.Erased = erased
		return nil
	}
	c, err := s.deks.Load(r.Tenant, r.Subject.UUID, func() (*phi.Cipher, error) {
		dek, err := s.keys.UnwrapKey(ctx, r.Tenant, wrapped)
		if err != nil {
			return nil, fmt.Errorf("unwrap data key: %w", err)
		}
		return phi.NewCipher(dek)
	})
	if err != nil {
		return err
	}
	if r.Opened, err = c.Open(r.PHI, phi.EventAAD(r.Tenant, r.EventID)); err != nil {
		return fmt.Errorf("open event %s: %w", r.EventID, err)
	}
	return nil
}

// EventFn receives one event; an error stops the read.
type EventFn func(chartstream.Event) error

// PatientEvents calls fn with the events of the patient's streams that f
// selects (f.Patient is set to patient), in commit order, opened and
// upcast to the current schema, reading them as it goes. Errors: ENOTFOUND
// when the tenant has no such patient stream (another tenant's included).
func (s *Store) PatientEvents(ctx context.Context, tenant chartstream.TenantID, patient chartstream.StreamRef, f RecordFilter, fn EventFn) error {
	f.Patient = patient
	where, args := f.where(tenant)
	err := postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		if err := f.checkPatient(ctx, tx, tenant); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, readSetup); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+eventColumns+` FROM events e`+where, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanEvent(rows)
			if err != nil {
				return err
			}
			if err := s.Open(ctx, &e); err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	return wrapRead("patient events", err)
}
