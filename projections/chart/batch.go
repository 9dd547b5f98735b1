package chart

import (
	"bytes"
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

// ApplyBatch applies a tenant's events in order, like Apply one by one,
// but each run of consecutive observations set-based: observations commute
// (the latest vital wins by effective time, the chart's version only
// grows), so a run needs one vitals upsert and one version update, not
// two statements per observation. That is what makes a rebuild of a
// history of vital signs fast.
func (p Projector) ApplyBatch(ctx context.Context, tx pgx.Tx, events []chartstream.Event) error {
	var run observationRun
	for _, e := range events {
		if e.Stream.Type == patient.StreamType && e.Type == patient.TypeObservationRecorded {
			if err := run.add(e); err != nil {
				return err
			}
			continue
		}
		if err := run.flush(ctx, tx); err != nil {
			return err
		}
		if err := p.Apply(ctx, tx, e); err != nil {
			return err
		}
	}
	return run.flush(ctx, tx)
}

type vitalKey struct {
	patient uuid.UUID
	code    string
}

type touched struct {
	version  int64
	recorded time.Time
}

// observationRun collects consecutive observations: the latest vital per
// patient and code, and each patient's highest version.
type observationRun struct {
	tenant  chartstream.TenantID
	vitals  map[vitalKey]patient.ObservationRecorded
	touches map[uuid.UUID]touched
}

func (r *observationRun) add(e chartstream.Event) error {
	payload, err := patient.Decode(e)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	o, ok := payload.(patient.ObservationRecorded)
	if !ok {
		return fmt.Errorf("chart: %s event decoded as %T", e.Type, payload)
	}
	if r.touches == nil {
		r.tenant, r.vitals, r.touches = e.Tenant, make(map[vitalKey]patient.ObservationRecorded), make(map[uuid.UUID]touched)
	}
	if t := r.touches[e.Stream.ID]; e.Version > t.version {
		r.touches[e.Stream.ID] = touched{version: e.Version, recorded: e.RecordedAt}
	}
	if o.System == patient.LOINC && IsVitalSign(o.Code) {
		k := vitalKey{e.Stream.ID, o.Code}
		if cur, ok := r.vitals[k]; !ok || later(o, cur) {
			r.vitals[k] = o
		}
	}
	return nil
}

// later is the order Apply's upsert keeps: effective time, then id.
func later(a, b patient.ObservationRecorded) bool {
	if !a.EffectiveAt.Equal(b.EffectiveAt) {
		return a.EffectiveAt.After(b.EffectiveAt)
	}
	return bytes.Compare(a.ObservationID[:], b.ObservationID[:]) > 0
}

func (r *observationRun) flush(ctx context.Context, tx pgx.Tx) error {
	if len(r.touches) == 0 {
		return nil
	}
	defer func() { r.vitals, r.touches = nil, nil }()
	if len(r.vitals) > 0 {
		var patients, ids []uuid.UUID
		var codes, systems []string
		var values, units, valueCodes []pgtype.Text
		var effective []time.Time
		for k, o := range r.vitals {
			var value pgtype.Text
			if o.Value != nil {
				// As text, as pgx sends a float64 to numeric row by row.
				value = pgtype.Text{String: strconv.FormatFloat(*o.Value, 'f', -1, 64), Valid: true}
			}
			patients, ids = append(patients, k.patient), append(ids, o.ObservationID)
			codes, systems = append(codes, o.Code), append(systems, o.System)
			values, units = append(values, value), append(units, pgtype.Text{String: o.Unit, Valid: o.Unit != ""})
			valueCodes, effective = append(valueCodes, pgtype.Text{String: o.ValueCode, Valid: o.ValueCode != ""}), append(effective, o.EffectiveAt)
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO chart_vitals AS v (tenant_id, patient_id, code, system, observation_id, value, unit,
				value_code, effective_at)
			SELECT $1, x.patient, x.code, x.system, x.id, x.value, x.unit, x.value_code, x.effective_at
			FROM unnest($2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::numeric[], $7::text[], $8::text[], $9::timestamptz[])
				AS x(patient, code, system, id, value, unit, value_code, effective_at)
			ON CONFLICT (tenant_id, patient_id, code) DO UPDATE
			SET system = excluded.system, observation_id = excluded.observation_id, value = excluded.value,
				unit = excluded.unit, value_code = excluded.value_code, effective_at = excluded.effective_at
			WHERE (v.effective_at, v.observation_id) < (excluded.effective_at, excluded.observation_id)`,
			r.tenant, patients, codes, systems, ids, values, units, valueCodes, effective)
		if err != nil {
			return fmt.Errorf("chart: apply vitals: %w", err)
		}
	}
	var patients []uuid.UUID
	var versions []int64
	var recorded []time.Time
	for id, t := range r.touches {
		patients, versions, recorded = append(patients, id), append(versions, t.version), append(recorded, t.recorded)
	}
	_, err := tx.Exec(ctx, `
		UPDATE patient_charts c SET version = x.version, updated_at = x.recorded
		FROM unnest($2::uuid[], $3::bigint[], $4::timestamptz[]) AS x(patient, version, recorded)
		WHERE c.tenant_id = $1 AND c.patient_id = x.patient AND c.version < x.version`,
		r.tenant, patients, versions, recorded)
	if err != nil {
		return fmt.Errorf("chart: apply observations' versions: %w", err)
	}
	return nil
}
