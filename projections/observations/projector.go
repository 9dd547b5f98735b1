// Package observations is the observation read model: every observation of
// every patient, as a time series per patient and LOINC code.
package observations

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/patient"
)

// Projector applies observation events to the observations table. Apply
// runs inside the caller's tenant transaction, ignores every other event
// type, and is idempotent: an observation never changes, so a redelivered
// one is skipped.
type Projector struct{}

// Name returns the projection's name in projection_checkpoints.
func (Projector) Name() string { return "observations" }

// Tables returns the projection's tables, for a rebuild.
func (Projector) Tables() []string { return []string{"observations"} }

// Apply projects e. It returns an error, wrapped, when an observation event
// cannot be decoded or written.
func (Projector) Apply(ctx context.Context, tx pgx.Tx, e chartstream.Event) error {
	if e.Stream.Type != patient.StreamType || e.Type != patient.TypeObservationRecorded {
		return nil
	}
	payload, err := patient.Decode(e)
	if err != nil {
		return fmt.Errorf("observations: %w", err)
	}
	o, ok := payload.(patient.ObservationRecorded)
	if !ok {
		return fmt.Errorf("observations: %s event decoded as %T", e.Type, payload)
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO observations (tenant_id, observation_id, patient_id, code, system, value, unit, value_code,
			effective_at, encounter_id, recorded_at)
		VALUES ($1, $2, $3, $4, $5, $6, nullif($7, ''), nullif($8, ''), $9, $10, $11)
		ON CONFLICT (tenant_id, observation_id) DO NOTHING`,
		e.Tenant, o.ObservationID, e.Stream.ID, o.Code, o.System, o.Value, o.Unit, o.ValueCode,
		o.EffectiveAt, o.EncounterID, e.RecordedAt)
	if err != nil {
		return fmt.Errorf("observations: apply event at version %d of patient %s: %w", e.Version, e.Stream.ID, err)
	}
	return nil
}
