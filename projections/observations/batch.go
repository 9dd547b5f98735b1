package observations

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/patient"
)

// ApplyBatch applies a tenant's events at once: all observations in one
// set-based INSERT. Observations only insert (a redelivered one is
// ignored), so their order does not matter.
func (Projector) ApplyBatch(ctx context.Context, tx pgx.Tx, events []chartstream.Event) error {
	var (
		ids, patients       []uuid.UUID
		codes, systems      []string
		values              []pgtype.Text
		units, valueCodes   []string
		effective, recorded []time.Time
		encounters          []pgtype.UUID
	)
	for _, e := range events {
		if e.Stream.Type != patient.StreamType || e.Type != patient.TypeObservationRecorded {
			continue
		}
		payload, err := patient.Decode(e)
		if err != nil {
			return fmt.Errorf("observations: %w", err)
		}
		o, ok := payload.(patient.ObservationRecorded)
		if !ok {
			return fmt.Errorf("observations: %s event decoded as %T", e.Type, payload)
		}
		// As text, the way pgx sends a float64 to a numeric column one
		// row at a time, so both paths store the same number.
		var v pgtype.Text
		if o.Value != nil {
			v = pgtype.Text{String: strconv.FormatFloat(*o.Value, 'f', -1, 64), Valid: true}
		}
		var enc pgtype.UUID
		if o.EncounterID != nil {
			enc = pgtype.UUID{Bytes: *o.EncounterID, Valid: true}
		}
		ids, patients = append(ids, o.ObservationID), append(patients, e.Stream.ID)
		codes, systems, values = append(codes, o.Code), append(systems, o.System), append(values, v)
		units, valueCodes = append(units, o.Unit), append(valueCodes, o.ValueCode)
		effective, recorded, encounters = append(effective, o.EffectiveAt), append(recorded, e.RecordedAt), append(encounters, enc)
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO observations (tenant_id, observation_id, patient_id, code, system, value, unit, value_code,
			effective_at, encounter_id, recorded_at)
		SELECT $1, o.id, o.patient, o.code, o.system, o.value, nullif(o.unit, ''), nullif(o.value_code, ''),
			o.effective_at, o.encounter, o.recorded_at
		FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::numeric[], $7::text[], $8::text[],
			$9::timestamptz[], $10::uuid[], $11::timestamptz[])
			AS o(id, patient, code, system, value, unit, value_code, effective_at, encounter, recorded_at)
		ON CONFLICT (tenant_id, observation_id) DO NOTHING`,
		events[0].Tenant, ids, patients, codes, systems, values, units, valueCodes, effective, encounters, recorded)
	if err != nil {
		return fmt.Errorf("observations: apply %d observations: %w", len(ids), err)
	}
	return nil
}
