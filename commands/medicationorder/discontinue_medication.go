package medicationorder

import (
	"context"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/check"
	"github.com/chartstream/chartstream/commands/internal/decision"
	"github.com/chartstream/chartstream/commands/patient"
)

// DiscontinueMedication stops an active medication order.
type DiscontinueMedication struct {
	OrderID uuid.UUID
	// Reason is optional free text.
	Reason string
	// ExpectedVersion is the order version the caller last saw (If-Match);
	// nil when the caller did not pin one.
	ExpectedVersion *int64
}

// Validate reports every problem with the input as one EINVALID error.
func (c DiscontinueMedication) Validate() error {
	var p check.Problems
	p.Note("reason", c.Reason, false, check.MaxNote)
	return p.Err()
}

// decide discontinues. Errors: EINVALID for bad input, ENOTFOUND for an
// order never prescribed, ECONFLICT for one already discontinued.
func (c DiscontinueMedication) decide(o *MedicationOrder, p *patient.Patient) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	switch o.Status {
	case "":
		return nil, errNotFound()
	case StatusDiscontinued:
		return nil, chartstream.Errorf(chartstream.ECONFLICT, "medication order is already discontinued")
	}
	if p.Erased() {
		return nil, chartstream.Errorf(chartstream.EUNPROCESSABLE, "the patient's record was erased")
	}
	return []Event{MedicationDiscontinued{PatientID: o.PatientID, Reason: c.Reason}}, nil
}

// CommandName is the command's name in logs and metrics.
func (DiscontinueMedication) CommandName() string { return "medication_order.discontinue" }

// Target is the order's stream.
func (c DiscontinueMedication) Target() chartstream.StreamRef { return Stream(c.OrderID) }

// Execute discontinues; the result's ID is the order id. A concurrent
// discontinuation, or the patient's erasure, makes it decide again.
func (c DiscontinueMedication) Execute(ctx context.Context, env decision.Env, tenant chartstream.TenantID, md chartstream.Metadata) (chartstream.CommandResult, error) {
	if err := c.Validate(); err != nil {
		return chartstream.CommandResult{}, err
	}
	o, _, err := orders(env).Load(ctx, tenant, c.OrderID)
	if err != nil {
		return chartstream.CommandResult{}, err
	}
	// Not found before a stale If-Match: there is nothing to be stale.
	if !o.Prescribed() {
		return chartstream.CommandResult{}, errNotFound()
	}
	var p *patient.Patient
	return orders(env).Update(ctx, tenant, c.OrderID, c.ExpectedVersion, md, func(o *MedicationOrder) ([]Event, error) { return c.decide(o, p) },
		decision.DependsOn(TypeDiscontinued),
		decision.Consulting(patient.Consult(env, tenant, o.PatientID, &p, patient.TypeErased)))
}
