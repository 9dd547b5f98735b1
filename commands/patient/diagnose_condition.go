package patient

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/check"
	"github.com/chartstream/chartstream/commands/internal/decision"
)

// DiagnoseCondition adds a coded condition to the patient's problem list.
type DiagnoseCondition struct {
	PatientID uuid.UUID
	// ConditionID is the new condition's id; zero lets the handler choose.
	ConditionID uuid.UUID
	// Code and System code the condition (SNOMED CT, ICD-10, ...).
	Code    string
	System  string
	Display string
	// Onset is an optional date YYYY-MM-DD, not in the future.
	Onset string
	// ExpectedVersion is the patient version the caller last saw
	// (If-Match); nil when the caller did not pin one.
	ExpectedVersion *int64
}

// Validate reports every problem with the input as one EINVALID error.
func (c DiagnoseCondition) Validate(now time.Time) error {
	var p check.Problems
	p.Coding("", c.Code, c.System, c.Display)
	if c.Onset != "" {
		p.Date("onset", c.Onset, now)
	}
	return p.Err()
}

// decide records the diagnosis. Errors: EINVALID for bad input, ENOTFOUND
// for an unregistered patient, ECONFLICT when the condition id is taken.
func (c DiagnoseCondition) decide(p *Patient, now time.Time) ([]Event, error) {
	if err := c.Validate(now); err != nil {
		return nil, err
	}
	if c.ConditionID == uuid.Nil {
		return nil, chartstream.Invalid(chartstream.FieldError{Field: "condition_id", Reason: "is required"})
	}
	if err := registered(p); err != nil {
		return nil, err
	}
	if _, ok := p.Conditions[c.ConditionID]; ok {
		return nil, chartstream.Errorf(chartstream.ECONFLICT, "condition is already diagnosed")
	}
	return []Event{ConditionDiagnosed{ConditionID: c.ConditionID, Code: c.Code, System: c.System, Display: c.Display, Onset: c.Onset}}, nil
}

// CommandName is the command's name in logs and metrics.
func (DiagnoseCondition) CommandName() string { return "patient.diagnose_condition" }

// Target is the patient's stream.
func (c DiagnoseCondition) Target() chartstream.StreamRef { return Stream(c.PatientID) }

// Execute records the diagnosis; the result's ID is the condition id.
func (c DiagnoseCondition) Execute(ctx context.Context, env decision.Env, tenant chartstream.TenantID, md chartstream.Metadata) (chartstream.CommandResult, error) {
	if c.ConditionID == uuid.Nil {
		c.ConditionID = decision.NewID(md, "condition")
	}
	return change(ctx, env, tenant, md, c.PatientID, c.ExpectedVersion, c, c.ConditionID, TypeErased)
}
