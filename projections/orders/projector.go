// Package orders is the medication order read model: every order with its
// status, per patient.
package orders

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/medicationorder"
	"github.com/chartstream/chartstream/commands/patient"
)

// Order statuses in the read model.
const (
	StatusActive  = "active"
	StatusStopped = "stopped"
)

// Projector applies medication order events to the medication_orders
// table. Apply runs inside the caller's tenant transaction, ignores every
// other event type, and is idempotent: a row changes only for an event of a
// later version than the one it reflects.
type Projector struct{}

// Name returns the projection's name in projection_checkpoints.
func (Projector) Name() string { return "orders" }

// Tables returns the projection's tables, for a rebuild.
func (Projector) Tables() []string { return []string{"medication_orders"} }

// Apply projects e. It returns an error, wrapped, when an order event
// cannot be decoded or written. Erased PHI (the override and
// discontinuation reasons) is stored as NULL.
func (Projector) Apply(ctx context.Context, tx pgx.Tx, e chartstream.Event) error {
	if e.Stream.Type == patient.StreamType && e.Type == patient.TypeErased {
		// The reasons are free text under the patient's key: they leave
		// with it.
		_, err := tx.Exec(ctx, `UPDATE medication_orders SET override_reason = NULL, discontinued_reason = NULL
			WHERE tenant_id = $1 AND patient_id = $2`, e.Tenant, e.Stream.ID)
		return err
	}
	if e.Stream.Type != medicationorder.StreamType {
		return nil
	}
	switch e.Type {
	case medicationorder.TypePrescribed, medicationorder.TypeDiscontinued:
	default:
		return nil
	}
	payload, err := medicationorder.Decode(e)
	if err != nil {
		return fmt.Errorf("orders: %w", err)
	}
	switch p := payload.(type) {
	case medicationorder.MedicationPrescribed:
		var override string
		if p.Override != nil {
			override = p.Override.Reason
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO medication_orders (tenant_id, order_id, patient_id, code, display, system, dose, route,
				frequency, prescriber, status, override_reason, prescribed_at, version)
			VALUES ($1, $2, $4, $5, nullif($6, ''), $7, $8, $9, $10, $11, $12, nullif($13, ''), $14, $3)
			ON CONFLICT (tenant_id, order_id) DO NOTHING`,
			e.Tenant, e.Stream.ID, e.Version, p.PatientID, p.Medication.Code, p.Medication.Display,
			p.Medication.System, p.Dose, p.Route, p.Frequency, p.Prescriber, StatusActive, override, e.RecordedAt)
	case medicationorder.MedicationDiscontinued:
		_, err = tx.Exec(ctx, `
			UPDATE medication_orders
			SET status = $4, discontinued_reason = nullif($5, ''), discontinued_at = $6, version = $3
			WHERE tenant_id = $1 AND order_id = $2 AND version < $3`,
			e.Tenant, e.Stream.ID, e.Version, StatusStopped, p.Reason, e.RecordedAt)
	}
	if err != nil {
		return fmt.Errorf("orders: apply %s event at version %d of order %s: %w", e.Type, e.Version, e.Stream.ID, err)
	}
	return nil
}
