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

// StartEncounterHandler handles StartEncounter.
type StartEncounterHandler struct{ handler }

// NewStartEncounterHandler returns a handler appending to store. It panics
// on a nil store.
func NewStartEncounterHandler(store EventStore) StartEncounterHandler {
	return StartEncounterHandler{newHandler(store)}
}

// Handle starts the encounter; Result.ID is the encounter id. It never
// retries: the only conflict on a new stream is an id already in use. A
// death recorded between the patient read and the append is not seen; the
// event store offers no multi-stream append to close that window.
func (h StartEncounterHandler) Handle(ctx context.Context, tenant chartstream.TenantID, md chartstream.Metadata, cmd StartEncounter) (Result, error) {
	if cmd.EncounterID == uuid.Nil {
		cmd.EncounterID = uuid.New()
	}
	if err := cmd.Validate(); err != nil {
		return Result{}, err
	}
	load := func(ctx context.Context) (*Encounter, int64, error) {
		return read(ctx, h.store, tenant, cmd.EncounterID)
	}
	consult := func(ctx context.Context) (*patient.Patient, error) {
		return patient.Load(ctx, h.store, tenant, cmd.PatientID)
	}
	plan := decision.Plan{Stream: Stream(cmd.EncounterID), Metadata: md}
	res, err := decision.RunWith(ctx, h.store, tenant, plan, load, consult, cmd.decide)
	return result(cmd.EncounterID, res, err)
}
