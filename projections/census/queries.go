package census

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/projections"
)

// Encounter is an encounter as the census shows it.
type Encounter struct {
	EncounterID uuid.UUID  `json:"encounter_id"`
	PatientID   uuid.UUID  `json:"patient_id"`
	Class       string     `json:"class"`
	Location    string     `json:"location"`
	Status      string     `json:"status"`
	StartedAt   time.Time  `json:"started_at"`
	EndedAt     *time.Time `json:"ended_at"`
}

// EncounterParams selects encounters; the criteria given must all match.
type EncounterParams struct {
	// Status is StatusInProgress, StatusFinished or empty for both.
	Status string
	// Location matches exactly; empty means every location.
	Location string
	// PatientID, when not nil, selects one patient's encounters.
	PatientID uuid.UUID
	// Cursor continues after a previous page (Page.Next).
	Cursor string
	// Limit is the page size (see projections.Limit).
	Limit int
}

// Encounters returns a page of the tenant's encounters matching p, oldest
// first (by start, then id). The census of a ward is Status
// StatusInProgress with its Location. Errors: EINVALID for an unknown
// status, a bad limit or cursor.
func Encounters(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, p EncounterParams) (projections.Page[Encounter], error) {
	var f projections.Filter
	switch p.Status {
	case "":
	case StatusInProgress, StatusFinished:
		f.Where("status = " + f.Arg(p.Status))
	default:
		return projections.Page[Encounter]{}, chartstream.Invalid(chartstream.FieldError{Field: "status", Reason: "must be in-progress or finished"})
	}
	if p.Location != "" {
		f.Where("location = " + f.Arg(p.Location))
	}
	if p.PatientID != uuid.Nil {
		f.Where("patient_id = " + f.Arg(p.PatientID))
	}
	page, err := projections.List(ctx, pool, tenant, encounterList, f, p.Cursor, p.Limit,
		func(e Encounter) uuid.UUID { return e.EncounterID })
	if err != nil {
		return page, fmt.Errorf("census: %w", err)
	}
	return page, nil
}

var encounterList = projections.Keyset{
	Table:   "encounters",
	Columns: "encounter_id, patient_id, class, location, status, started_at, ended_at",
	SortKey: "started_at",
	ID:      "encounter_id",
}

// ByID returns one encounter. Errors: ENOTFOUND for an id the tenant's
// read model does not know.
func ByID(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, id uuid.UUID) (Encounter, error) {
	return projections.One[Encounter](ctx, pool, tenant,
		`SELECT `+encounterList.Columns+` FROM encounters WHERE tenant_id = $1 AND encounter_id = $2`, id, "encounter")
}
