package observations

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/projections"
)

// Observation is one recorded observation: a number with its UCUM unit, or
// a coded value.
type Observation struct {
	ObservationID uuid.UUID  `json:"observation_id"`
	PatientID     uuid.UUID  `json:"patient_id"`
	Code          string     `json:"code"`
	System        string     `json:"system"`
	Value         *float64   `json:"value"`
	Unit          *string    `json:"unit"`
	ValueCode     *string    `json:"value_code"`
	EffectiveAt   time.Time  `json:"effective_at"`
	EncounterID   *uuid.UUID `json:"encounter_id"`
	RecordedAt    time.Time  `json:"recorded_at"`
}

// ObservationParams selects a patient's observations.
type ObservationParams struct {
	// Code is a LOINC code; empty means every code.
	Code string
	// Since and Until bound effective_at: Since <= effective_at < Until.
	// Zero means unbounded.
	Since, Until time.Time
	// Cursor continues after a previous page (Page.Next).
	Cursor string
	// Limit is the page size (see projections.Limit).
	Limit int
}

// Observations returns a page of a patient's observations, newest first
// (by effective time, then id). A patient the tenant does not know has no
// observations: an empty page, not ENOTFOUND, because this read model
// cannot tell an unknown patient from one never observed. Errors: EINVALID
// for a bad limit, cursor or time range.
func Observations(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, patient uuid.UUID, p ObservationParams) (projections.Page[Observation], error) {
	if !p.Since.IsZero() && !p.Until.IsZero() && !p.Since.Before(p.Until) {
		return projections.Page[Observation]{}, chartstream.Invalid(chartstream.FieldError{Field: "until", Reason: "must be after since"})
	}
	var f projections.Filter
	f.Where("patient_id = " + f.Arg(patient))
	if p.Code != "" {
		f.Where("code = " + f.Arg(p.Code))
	}
	if !p.Since.IsZero() {
		f.Where("effective_at >= " + f.Arg(p.Since))
	}
	if !p.Until.IsZero() {
		f.Where("effective_at < " + f.Arg(p.Until))
	}
	page, err := projections.List(ctx, pool, tenant, observationList, f, p.Cursor, p.Limit,
		func(o Observation) uuid.UUID { return o.ObservationID })
	if err != nil {
		return page, fmt.Errorf("observations: %w", err)
	}
	return page, nil
}

var observationList = projections.Keyset{
	Table: "observations",
	Columns: `observation_id, patient_id, code, system, value::float8 AS value, unit, value_code, effective_at,
		encounter_id, recorded_at`,
	SortKey:    "effective_at",
	ID:         "observation_id",
	Descending: true,
}

// ByID returns one observation. Errors: ENOTFOUND for an id the tenant's
// read model does not know.
func ByID(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, id uuid.UUID) (Observation, error) {
	return projections.One[Observation](ctx, pool, tenant,
		`SELECT `+observationList.Columns+` FROM observations WHERE tenant_id = $1 AND observation_id = $2`, id, "observation")
}
