package patient

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/check"
	"github.com/chartstream/chartstream/commands/internal/decision"
)

// UpdateDemographics corrects or changes some of a registered patient's
// demographics. Nil fields stay as they are; at least one must be set.
type UpdateDemographics struct {
	PatientID uuid.UUID
	Name      *HumanName
	// BirthDate is YYYY-MM-DD, not in the future.
	BirthDate *string
	Sex       *Sex
	// Contact replaces the whole contact; a Contact with empty fields
	// removes it.
	Contact *Contact
	// ExpectedVersion is the patient version the caller last saw
	// (If-Match); nil when the caller did not pin one.
	ExpectedVersion *int64
}

// Validate reports every problem with the input as one EINVALID error.
func (c UpdateDemographics) Validate(now time.Time) error {
	if c.Name == nil && c.BirthDate == nil && c.Sex == nil && c.Contact == nil {
		return chartstream.Errorf(chartstream.EINVALID, "at least one of name, birth_date, sex or contact is required")
	}
	var p check.Problems
	if c.Name != nil {
		checkName(&p, *c.Name)
	}
	if c.BirthDate != nil {
		checkBirthDate(&p, *c.BirthDate, now)
	}
	if c.Sex != nil {
		checkSex(&p, *c.Sex)
	}
	if c.Contact != nil {
		checkContact(&p, *c.Contact)
	}
	return p.Err()
}

// decide records the change. Errors: EINVALID for bad input, ENOTFOUND for
// an unregistered patient, EUNPROCESSABLE for a birth date after the
// recorded death.
func (c UpdateDemographics) decide(p *Patient, now time.Time) ([]Event, error) {
	if err := c.Validate(now); err != nil {
		return nil, err
	}
	if err := registered(p); err != nil {
		return nil, err
	}
	if c.BirthDate != nil && !p.DeceasedAt.IsZero() && diedBeforeBirth(*c.BirthDate, p.DeceasedAt) {
		return nil, chartstream.Errorf(chartstream.EUNPROCESSABLE, "birth date must not be after the recorded death")
	}
	return []Event{DemographicsUpdated{Name: c.Name, BirthDate: c.BirthDate, Sex: c.Sex, Contact: c.Contact}}, nil
}

// CommandName is the command's name in logs and metrics.
func (UpdateDemographics) CommandName() string { return "patient.update_demographics" }

// Target is the patient's stream.
func (c UpdateDemographics) Target() chartstream.StreamRef { return Stream(c.PatientID) }

// Execute updates the demographics; the result's ID is the patient id.
// Without ExpectedVersion the last writer wins, field by field.
func (c UpdateDemographics) Execute(ctx context.Context, env decision.Env, tenant chartstream.TenantID, md chartstream.Metadata) (chartstream.CommandResult, error) {
	return change(ctx, env, tenant, md, c.PatientID, c.ExpectedVersion, c, c.PatientID, TypeErased, TypeDeceased)
}
