package patient

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

// ResolveCondition marks an active condition on the problem list resolved.
type ResolveCondition struct {
	PatientID   uuid.UUID
	ConditionID uuid.UUID
	// ExpectedVersion is the patient version the caller last saw
	// (If-Match); nil when the caller did not pin one.
	ExpectedVersion *int64
}

// Validate has nothing to check: both ids are looked up.
func (c ResolveCondition) Validate(time.Time) error { return nil }

// decide resolves the condition. Errors: ENOTFOUND for an unregistered
// patient or a condition not on the record, ECONFLICT for a condition
// already resolved.
func (c ResolveCondition) decide(p *Patient, _ time.Time) ([]Event, error) {
	if err := registered(p); err != nil {
		return nil, err
	}
	cond, ok := p.Conditions[c.ConditionID]
	switch {
	case !ok:
		return nil, chartstream.Errorf(chartstream.ENOTFOUND, "condition not found")
	case cond.Resolved:
		return nil, chartstream.Errorf(chartstream.ECONFLICT, "condition is already resolved")
	}
	return []Event{ConditionResolved{ConditionID: c.ConditionID}}, nil
}

// ResolveConditionHandler handles ResolveCondition.
type ResolveConditionHandler struct{ handler }

// NewResolveConditionHandler returns a handler appending to store. It
// panics on a nil store.
func NewResolveConditionHandler(store EventStore) ResolveConditionHandler {
	return ResolveConditionHandler{newHandler(store)}
}

// Handle resolves the condition; Result.ID is the condition id.
func (h ResolveConditionHandler) Handle(ctx context.Context, tenant chartstream.TenantID, md chartstream.Metadata, cmd ResolveCondition) (Result, error) {
	return h.change(ctx, tenant, md, cmd.PatientID, cmd.ExpectedVersion, cmd, cmd.ConditionID)
}
