package orders

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/projections"
)

// MedicationOrder is a medication order. The reasons are PHI: null when
// none was given or when crypto-shredded.
type MedicationOrder struct {
	OrderID   uuid.UUID `json:"order_id"`
	PatientID uuid.UUID `json:"patient_id"`
	// Code, Display and System are the RxNorm coding of the medication.
	Code               string     `json:"code"`
	Display            *string    `json:"display"`
	System             string     `json:"system"`
	Dose               string     `json:"dose"`
	Route              string     `json:"route"`
	Frequency          string     `json:"frequency"`
	Prescriber         string     `json:"prescriber"`
	Status             string     `json:"status"`
	OverrideReason     *string    `json:"override_reason"`
	DiscontinuedReason *string    `json:"discontinued_reason"`
	PrescribedAt       time.Time  `json:"prescribed_at"`
	DiscontinuedAt     *time.Time `json:"discontinued_at"`
}

// MedicationOrders returns a patient's orders with the given status
// (StatusActive, StatusStopped, or empty for all), in prescription order.
// A patient the tenant does not know has no orders: an empty list, not
// ENOTFOUND, because this read model cannot tell an unknown patient from one
// never prescribed anything. Errors: EINVALID for an unknown status.
func MedicationOrders(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, patient uuid.UUID, status string) ([]MedicationOrder, error) {
	switch status {
	case "", StatusActive, StatusStopped:
	default:
		return nil, chartstream.Invalid(chartstream.FieldError{Field: "status", Reason: "must be active or stopped"})
	}
	var items []MedicationOrder
	err := postgres.InReadModelTx(ctx, pool, tenant, postgres.LiveReadModels, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT `+orderColumns+` FROM medication_orders
			WHERE tenant_id = $1 AND patient_id = $2 AND ($3 = '' OR status = $3)
			ORDER BY prescribed_at, order_id`, tenant, patient, status)
		var err error
		items, err = pgx.CollectRows(rows, pgx.RowToStructByName[MedicationOrder])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("orders: medication orders: %w", err)
	}
	if items == nil {
		items = []MedicationOrder{} // [] in JSON, not null
	}
	return items, nil
}

// orderColumns are MedicationOrder's columns.
const orderColumns = `order_id, patient_id, code, display, system, dose, route, frequency, prescriber, status,
	override_reason, discontinued_reason, prescribed_at, discontinued_at`

// ByID returns one medication order. Errors: ENOTFOUND for an id the
// tenant's read model does not know.
func ByID(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, id uuid.UUID) (MedicationOrder, error) {
	return projections.One[MedicationOrder](ctx, pool, tenant,
		`SELECT `+orderColumns+` FROM medication_orders WHERE tenant_id = $1 AND order_id = $2`, id, "medication order")
}
