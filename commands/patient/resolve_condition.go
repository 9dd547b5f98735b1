package patient

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/decision"
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

// CommandName is the command's name in logs and metrics.
func (ResolveCondition) CommandName() string { return "patient.resolve_condition" }

// Target is the patient's stream.
func (c ResolveCondition) Target() chartstream.StreamRef { return Stream(c.PatientID) }

// Execute resolves the condition; the result's ID is the condition id.
func (c ResolveCondition) Execute(ctx context.Context, env decision.Env, tenant chartstream.TenantID, md chartstream.Metadata) (chartstream.CommandResult, error) {
	return change(ctx, env, tenant, md, c.PatientID, c.ExpectedVersion, c, c.ConditionID, TypeErased, TypeConditionResolved)
}
