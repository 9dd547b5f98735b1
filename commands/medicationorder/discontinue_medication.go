package medicationorder

import (
	"context"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/check"
	"github.com/chartstream/chartstream/commands/internal/decision"
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
func (c DiscontinueMedication) decide(o *MedicationOrder) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	switch o.Status {
	case "":
		return nil, errNotFound()
	case StatusDiscontinued:
		return nil, chartstream.Errorf(chartstream.ECONFLICT, "medication order is already discontinued")
	}
	return []Event{MedicationDiscontinued{PatientID: o.PatientID, Reason: c.Reason}}, nil
}

// DiscontinueMedicationHandler handles DiscontinueMedication.
type DiscontinueMedicationHandler struct{ handler }

// NewDiscontinueMedicationHandler returns a handler appending to store. It
// panics on a nil store.
func NewDiscontinueMedicationHandler(store EventStore) DiscontinueMedicationHandler {
	return DiscontinueMedicationHandler{newHandler(store)}
}

// Handle discontinues; Result.ID is the order id. A concurrent append is
// met by deciding again, which re-checks that the order is still active.
func (h DiscontinueMedicationHandler) Handle(ctx context.Context, tenant chartstream.TenantID, md chartstream.Metadata, cmd DiscontinueMedication) (Result, error) {
	if err := cmd.Validate(); err != nil {
		return Result{}, err
	}
	load := func(ctx context.Context) (*MedicationOrder, int64, error) {
		o, version, err := read(ctx, h.store, tenant, cmd.OrderID)
		// Not found before a stale If-Match: there is nothing to be stale.
		if err == nil && !o.Prescribed() {
			err = errNotFound()
		}
		return o, version, err
	}
	plan := decision.Plan{Stream: Stream(cmd.OrderID), Metadata: md, ExpectedVersion: cmd.ExpectedVersion, Retry: true}
	res, err := decision.Run(ctx, h.store, tenant, plan, load, cmd.decide)
	return result(cmd.OrderID, res, err)
}

func errNotFound() error {
	return chartstream.Errorf(chartstream.ENOTFOUND, "medication order not found")
}
