// Package census is the encounter read model: every encounter with its
// current location and status. The census of a location is its in-progress
// encounters.
package census

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/encounter"
)

// Encounter statuses in the read model (FHIR Encounter.status).
const (
	StatusInProgress = "in-progress"
	StatusFinished   = "finished"
)

// Projector applies encounter events to the encounters table. Apply runs
// inside the caller's tenant transaction, ignores every other event type,
// and is idempotent: a row changes only for an event of a later version
// than the one it reflects.
type Projector struct{}

// Name returns the projection's name in projection_checkpoints.
func (Projector) Name() string { return "census" }

// Tables returns the projection's tables, for a rebuild.
func (Projector) Tables() []string { return []string{"encounters"} }

// Apply projects e. It returns an error, wrapped, when an encounter event
// cannot be decoded or written.
func (Projector) Apply(ctx context.Context, tx pgx.Tx, e chartstream.Event) error {
	if e.Stream.Type != encounter.StreamType {
		return nil
	}
	switch e.Type {
	case encounter.TypeStarted, encounter.TypePatientTransferred, encounter.TypeDischarged:
	default:
		return nil
	}
	payload, err := encounter.Decode(e)
	if err != nil {
		return fmt.Errorf("census: %w", err)
	}
	switch p := payload.(type) {
	case encounter.EncounterStarted:
		_, err = tx.Exec(ctx, `
			INSERT INTO encounters (tenant_id, encounter_id, patient_id, class, location, status, started_at, version)
			VALUES ($1, $2, $4, $5, $6, $7, $8, $3)
			ON CONFLICT (tenant_id, encounter_id) DO NOTHING`,
			e.Tenant, e.Stream.ID, e.Version, p.PatientID, p.Class, p.Location, StatusInProgress, e.RecordedAt)
	case encounter.PatientTransferred:
		_, err = tx.Exec(ctx, `
			UPDATE encounters SET location = $4, version = $3
			WHERE tenant_id = $1 AND encounter_id = $2 AND version < $3`,
			e.Tenant, e.Stream.ID, e.Version, p.Location)
	case encounter.EncounterDischarged:
		_, err = tx.Exec(ctx, `
			UPDATE encounters SET status = $4, ended_at = $5, version = $3
			WHERE tenant_id = $1 AND encounter_id = $2 AND version < $3`,
			e.Tenant, e.Stream.ID, e.Version, StatusFinished, e.RecordedAt)
	}
	if err != nil {
		return fmt.Errorf("census: apply %s event at version %d of encounter %s: %w", e.Type, e.Version, e.Stream.ID, err)
	}
	return nil
}
