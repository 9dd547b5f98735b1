package encounter

import (
	"context"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/check"
	"github.com/chartstream/chartstream/commands/internal/decision"
	"github.com/chartstream/chartstream/commands/patient"
)

// maxLocation bounds a location name such as a ward and bed.
const maxLocation = 128

// StartEncounter begins a registered, living patient's encounter: an
// admission, a clinic visit or an emergency attendance.
type StartEncounter struct {
	// EncounterID is the new encounter's id; zero lets the handler choose.
	EncounterID uuid.UUID
	PatientID   uuid.UUID
	Class       Class
	// Location is where the patient is seen, such as a ward or a clinic.
	Location string
	// Reason is optional free text.
	Reason string
}

// Validate reports every problem with the input as one EINVALID error.
func (c StartEncounter) Validate() error {
	var p check.Problems
	if c.PatientID == uuid.Nil {
		p.Add("patient_id", "is required")
	}
	p.OneOf("class", string(c.Class), string(ClassInpatient), string(ClassOutpatient), string(ClassEmergency))
	p.Text("location", c.Location, true, maxLocation)
	p.Note("reason", c.Reason, false, check.MaxNote)
	return p.Err()
}

// decide starts the encounter. Errors: EINVALID for bad input, ENOTFOUND
// for an unregistered patient, ECONFLICT when the encounter id is taken,
// EUNPROCESSABLE for a deceased patient.
func (c StartEncounter) decide(e *Encounter, p *patient.Patient) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.EncounterID == uuid.Nil {
		return nil, chartstream.Invalid(chartstream.FieldError{Field: "encounter_id", Reason: "is required"})
	}
	if e.Started() {
		return nil, chartstream.Errorf(chartstream.ECONFLICT, "encounter already exists")
	}
	if err := p.RequireLiving(); err != nil {
		return nil, err
	}
	return []Event{EncounterStarted{PatientID: c.PatientID, Class: c.Class, Location: c.Location, Reason: c.Reason}}, nil
}

// CommandName is the command's name in logs and metrics.
func (StartEncounter) CommandName() string { return "encounter.start" }

// Target is the encounter's stream.
func (c StartEncounter) Target() chartstream.StreamRef { return Stream(c.EncounterID) }

// Execute starts the encounter; the result's ID is the encounter id. The
// patient's death or erasure recorded meanwhile makes it decide again (and
// refuse); its stream is new, so its only other conflict is an id in use.
func (c StartEncounter) Execute(ctx context.Context, env decision.Env, tenant chartstream.TenantID, md chartstream.Metadata) (chartstream.CommandResult, error) {
	if c.EncounterID == uuid.Nil {
		c.EncounterID = decision.NewID(md, "encounter")
	}
	if err := c.Validate(); err != nil {
		return chartstream.CommandResult{}, err
	}
	var p *patient.Patient
	return encounters(env).Update(ctx, tenant, c.EncounterID, nil, md, func(e *Encounter) ([]Event, error) { return c.decide(e, p) },
		decision.Consulting(patient.Consult(env, tenant, c.PatientID, &p, patient.TypeDeceased, patient.TypeErased)))
}
