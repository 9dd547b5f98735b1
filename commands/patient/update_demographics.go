package patient

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/check"
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

// UpdateDemographicsHandler handles UpdateDemographics.
type UpdateDemographicsHandler struct{ handler }

// NewUpdateDemographicsHandler returns a handler appending to store. It
// panics on a nil store.
func NewUpdateDemographicsHandler(store EventStore) UpdateDemographicsHandler {
	return UpdateDemographicsHandler{newHandler(store)}
}

// Handle updates the demographics; Result.ID is the patient id. Without
// ExpectedVersion the last writer wins, field by field.
func (h UpdateDemographicsHandler) Handle(ctx context.Context, tenant chartstream.TenantID, md chartstream.Metadata, cmd UpdateDemographics) (Result, error) {
	return h.change(ctx, tenant, md, cmd.PatientID, cmd.ExpectedVersion, cmd, cmd.PatientID)
}
