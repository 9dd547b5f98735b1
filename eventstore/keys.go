package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/postgres"
)

// dataKey returns the cipher of subject's data key. With create, a subject
// without a key gets a fresh one, wrapped by the tenant's KEK and stored
// before any event uses it. A destroyed (shredded) or missing key is
// phi.ErrKeyDestroyed.
func (s *Store) dataKey(ctx context.Context, tenant chartstream.TenantID, subject uuid.UUID, create bool) (*phi.Cipher, error) {
	return s.deks.Load(tenant, subject, func() (*phi.Cipher, error) {
		var wrapped []byte
		var found bool
		err := postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
			err := tx.QueryRow(ctx, `SELECT wrapped FROM data_keys WHERE tenant_id = $1 AND subject_id = $2`, tenant, subject).Scan(&wrapped)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			found = true
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("load data key: %w", err)
		}
		switch {
		case found && wrapped == nil:
			return nil, phi.ErrKeyDestroyed
		case !found && !create:
			return nil, phi.ErrKeyDestroyed
		case !found:
			return s.createDataKey(ctx, tenant, subject)
		}
		dek, err := s.keys.UnwrapKey(ctx, tenant, wrapped)
		if err != nil {
			return nil, fmt.Errorf("unwrap data key: %w", err)
		}
		return phi.NewCipher(dek)
	})
}

// dataKeyGenerator is a key provider that makes data keys itself, wrapped
// in the same call: a KMS's GenerateDataKey (internal/awskms), whose keys
// come from the KMS's own randomness.
type dataKeyGenerator interface {
	GenerateDataKey(ctx context.Context, tenant chartstream.TenantID) (dek, wrapped []byte, err error)
}

// newWrappedKey returns a fresh data key and its wrapping for tenant: from
// the provider when it makes keys, else made here and wrapped.
func (s *Store) newWrappedKey(ctx context.Context, tenant chartstream.TenantID) (dek, wrapped []byte, err error) {
	if g, ok := s.keys.(dataKeyGenerator); ok {
		if dek, wrapped, err = g.GenerateDataKey(ctx, tenant); err != nil {
			return nil, nil, fmt.Errorf("generate data key: %w", err)
		}
		return dek, wrapped, nil
	}
	if dek, err = phi.NewDataKey(); err != nil {
		return nil, nil, err
	}
	if wrapped, err = s.keys.WrapKey(ctx, tenant, dek); err != nil {
		return nil, nil, fmt.Errorf("wrap data key: %w", err)
	}
	return dek, wrapped, nil
}

// createDataKey stores a new wrapped key for subject. Two writers racing to
// create the first key agree on whichever row the database kept.
func (s *Store) createDataKey(ctx context.Context, tenant chartstream.TenantID, subject uuid.UUID) (*phi.Cipher, error) {
	dek, wrapped, err := s.newWrappedKey(ctx, tenant)
	if err != nil {
		return nil, err
	}
	var stored []byte
	err = postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO data_keys (tenant_id, subject_id, wrapped) VALUES ($1, $2, $3)
			ON CONFLICT (tenant_id, subject_id) DO NOTHING`, tenant, subject, wrapped); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT wrapped FROM data_keys WHERE tenant_id = $1 AND subject_id = $2`, tenant, subject).Scan(&stored)
	})
	if postgres.IsConstraintError(err, postgres.ForeignKeyViolation, "data_keys_tenant_id_fkey") {
		// The key is stored before the event, so an unknown tenant shows here
		// first; Append promises ENOTFOUND for it either way.
		return nil, chartstream.Errorf(chartstream.ENOTFOUND, "unknown tenant")
	}
	if err != nil {
		return nil, fmt.Errorf("store data key: %w", err)
	}
	if stored == nil {
		return nil, phi.ErrKeyDestroyed
	}
	if string(stored) != string(wrapped) {
		if dek, err = s.keys.UnwrapKey(ctx, tenant, stored); err != nil {
			return nil, fmt.Errorf("unwrap data key: %w", err)
		}
	}
	return phi.NewCipher(dek)
}

// ShredSubject destroys a patient's data key (crypto-shredding, e.g. for an
// erasure request). The events stay and still verify; their PHI fields read
// as erased from then on, and no new PHI can be recorded for the subject.
// Every process's key cache forgets the key at once (see WatchKeys): the
// shredding notifies them when it commits. The unique values the subject's
// stream claimed (its MRN) are released: their hashes would link the
// erased record back to them.
func (s *Store) ShredSubject(ctx context.Context, tenant chartstream.TenantID, subject uuid.UUID) error {
	err := postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO data_keys (tenant_id, subject_id, wrapped, destroyed_at) VALUES ($1, $2, NULL, now())
			ON CONFLICT (tenant_id, subject_id) DO UPDATE SET wrapped = NULL, destroyed_at = coalesce(data_keys.destroyed_at, now())`,
			tenant, subject)
		if err != nil {
			return err
		}
		// The subject's unique values (its MRN) go with its key: their
		// hashes would link the erased record back to them.
		if _, err := tx.Exec(ctx, `DELETE FROM unique_claims WHERE tenant_id = $1 AND stream_id = $2`, tenant, subject); err != nil {
			return err
		}
		// Delivered only if the shredding commits. Ids only, no PHI.
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, keysChannel, tenant.String()+"/"+subject.String())
		return err
	})
	s.deks.Forget(tenant, subject)
	if err != nil {
		return fmt.Errorf("shred subject: %w", err)
	}
	return nil
}

// seal moves the spec's PHI fields out of payload and seals them under the
// data subject's key, bound to this tenant and event.
func (s *Store) seal(ctx context.Context, tenant chartstream.TenantID, spec chartstream.EventSpec, stream chartstream.StreamRef, eventID uuid.UUID, payload json.RawMessage) (json.RawMessage, *chartstream.SealedPHI, error) {
	if len(spec.PHI) == 0 {
		return payload, nil, nil
	}
	clear, phiPart, err := phi.Split(payload, spec.PHI)
	if err != nil {
		return nil, nil, err
	}
	if phiPart == nil {
		return clear, nil, nil
	}
	subject, err := subjectOf(spec, stream, clear)
	if err != nil {
		return nil, nil, err
	}
	c, err := s.dataKey(ctx, tenant, subject, true)
	if errors.Is(err, phi.ErrKeyDestroyed) {
		return nil, nil, chartstream.Errorf(chartstream.EUNPROCESSABLE, "the patient's data was erased; PHI can no longer be recorded")
	}
	if err != nil {
		return nil, nil, err
	}
	return clear, &chartstream.SealedPHI{Subject: subject, Ciphertext: c.Seal(phiPart, phi.EventAAD(tenant, eventID))}, nil
}

// subjectOf finds the patient whose key seals an event's PHI: the spec's
// Subject field, or the stream itself.
func subjectOf(spec chartstream.EventSpec, stream chartstream.StreamRef, clear json.RawMessage) (uuid.UUID, error) {
	if spec.Subject == "" {
		return stream.ID, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(clear, &fields); err != nil {
		return uuid.Nil, chartstream.Errorf(chartstream.EINVALID, "event payload must be a JSON object")
	}
	var id uuid.UUID
	if err := json.Unmarshal(fields[spec.Subject], &id); err != nil || id == uuid.Nil {
		return uuid.Nil, chartstream.Invalid(chartstream.FieldError{Field: spec.Subject, Reason: "must be the patient's id"})
	}
	return id, nil
}

// Open decrypts an event's sealed PHI into its payload (or marks the fields
// erased when the subject's key was destroyed) and upcasts it to the
// current schema version. Events from ReadStream are already open; events
// from ReadAll or JetStream need Open before their PHI is read.
func (s *Store) Open(ctx context.Context, e *chartstream.Event) error {
	if e.Sealed != nil {
		spec, _ := s.registry.spec(e.Type)
		c, err := s.dataKey(ctx, e.Tenant, e.Sealed.Subject, false)
		switch {
		case errors.Is(err, phi.ErrKeyDestroyed):
			if e.Payload, e.Erased, err = phi.Erase(e.Payload, spec.PHI); err != nil {
				return fmt.Errorf("erase event %s: %w", e.ID, err)
			}
		case err != nil:
			return err
		default:
			plain, err := c.Open(e.Sealed.Ciphertext, phi.EventAAD(e.Tenant, e.ID))
			if err != nil {
				return fmt.Errorf("open event %s: %w", e.ID, err)
			}
			if e.Payload, err = phi.Merge(e.Payload, plain); err != nil {
				return fmt.Errorf("open event %s: %w", e.ID, err)
			}
		}
		e.Sealed = nil
	}
	payload, version, err := s.registry.upcast(e.Type, e.SchemaVersion, e.Payload)
	if err != nil {
		return err
	}
	e.Payload, e.SchemaVersion = payload, version
	return nil
}

// keysChannel is where a shredding announces the subject whose key it
// destroyed, as "<tenant>/<subject>".
const keysChannel = "chartstream_keys"

// WatchKeys keeps this process's key cache in step with shreddings in any
// process until ctx ends: it listens (on listener, a session-mode pool) for
// their notifications and forgets each key named. While it is not
// listening (starting, or reconnecting after the connection broke) it keeps
// the cache off, since it could miss one; so an erasure reaches every
// process's cache as fast as the notification travels, never after a TTL.
// A process that never watches keeps keys for the cache's TTL.
func (s *Store) WatchKeys(ctx context.Context, listener *pgxpool.Pool) {
	for ctx.Err() == nil {
		s.deks.Pause()
		err := s.watchKeysOnce(ctx, listener)
		if ctx.Err() != nil {
			return
		}
		_ = err // the cache stays off until listening again
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// WatchingKeys reports whether the key cache is on: WatchKeys is listening,
// or was never started.
func (s *Store) WatchingKeys() bool { return !s.deks.Paused() }

func (s *Store) watchKeysOnce(ctx context.Context, listener *pgxpool.Pool) error {
	pc, err := listener.Acquire(ctx)
	if err != nil {
		return err
	}
	conn := pc.Hijack() // a LISTENing connection goes back to no one
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{keysChannel}.Sanitize()); err != nil {
		return err
	}
	s.deks.Resume()
	defer s.deks.Pause()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		tenantPart, subjectPart, _ := strings.Cut(n.Payload, "/")
		tenant, err1 := chartstream.ParseTenantID(tenantPart)
		subject, err2 := uuid.Parse(subjectPart)
		if err1 != nil || err2 != nil {
			s.deks.Pause() // an unreadable notice: forget everything
			s.deks.Resume()
			continue
		}
		s.deks.Forget(tenant, subject)
	}
}

// ErasedSubjects returns which of the tenant's subjects were erased (their
// key destroyed), read from the database, never from a cache: a reader that
// must not pass on an erased patient's data (the de-identifier) learns of
// an erasure as soon as it commits. A subject without any key is not
// erased.
func (s *Store) ErasedSubjects(ctx context.Context, tenant chartstream.TenantID, subjects []uuid.UUID) (map[uuid.UUID]bool, error) {
	erased := make(map[uuid.UUID]bool)
	if len(subjects) == 0 {
		return erased, nil
	}
	err := postgres.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT subject_id FROM data_keys WHERE tenant_id = $1 AND subject_id = ANY($2) AND wrapped IS NULL`, tenant, subjects)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		for _, id := range ids {
			erased[id] = true
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("erased subjects: %w", err)
	}
	return erased, nil
}
