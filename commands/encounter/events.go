package encounter

import (
	"fmt"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/decision"
)

// StreamType is the aggregate type of encounter streams; an encounter's
// stream id is the encounter id.
const StreamType = "encounter"

// Event type names. They are stored with every event and never change: a new
// payload shape gets a new schema version and an upcaster, not a new name.
const (
	TypeStarted            = "encounter.started"
	TypePatientTransferred = "encounter.patient_transferred"
	TypeDischarged         = "encounter.discharged"
)

// schemaVersion is the payload version of every encounter event: all are
// still at their first shape.
const schemaVersion = 1

// Class is the kind of care an encounter is.
type Class string

// The encounter classes.
const (
	ClassInpatient  Class = "inpatient"
	ClassOutpatient Class = "outpatient"
	ClassEmergency  Class = "emergency"
)

// Event is an encounter event payload.
type Event interface {
	// EventType returns the event's stable type name.
	EventType() string
}

// EncounterStarted says a patient's encounter with the clinic began.
type EncounterStarted struct {
	PatientID uuid.UUID `json:"patient_id"`
	Class     Class     `json:"class"`
	Location  string    `json:"location"`
	Reason    string    `json:"reason,omitempty"`
}

// PatientTransferred says the patient moved to another location (ward,
// bed, room) during the encounter.
type PatientTransferred struct {
	Location string `json:"location"`
}

// EncounterDischarged says the encounter ended with the patient's discharge.
type EncounterDischarged struct{}

// EventType implements Event.
func (EncounterStarted) EventType() string { return TypeStarted }

// EventType implements Event.
func (PatientTransferred) EventType() string { return TypePatientTransferred }

// EventType implements Event.
func (EncounterDischarged) EventType() string { return TypeDischarged }

// EventSpecs declares every encounter event type to the event store. The
// reason for the visit is free text and PHI, encrypted under the key of the
// patient named in patient_id. Locations are the clinic's own and not PHI.
func EventSpecs() []chartstream.EventSpec {
	return []chartstream.EventSpec{
		{Type: TypeStarted, SchemaVersion: schemaVersion, PHI: []string{"reason"}, Subject: "patient_id", Payload: EncounterStarted{}},
		{Type: TypePatientTransferred, SchemaVersion: schemaVersion, Payload: PatientTransferred{}},
		{Type: TypeDischarged, SchemaVersion: schemaVersion, Payload: EncounterDischarged{}},
	}
}

// Decode turns a stored encounter event into its payload. It fails for
// unknown types and schema versions.
func Decode(e chartstream.Event) (Event, error) {
	switch e.Type {
	case TypeStarted:
		return decode[EncounterStarted](e)
	case TypePatientTransferred:
		return decode[PatientTransferred](e)
	case TypeDischarged:
		return decode[EncounterDischarged](e)
	}
	return nil, fmt.Errorf("encounter stream %s: unknown event type %q", e.Stream.ID, e.Type)
}

func decode[T Event](e chartstream.Event) (Event, error) {
	var payload T
	if err := decision.Unmarshal(e, schemaVersion, &payload); err != nil {
		return nil, err
	}
	return payload, nil
}
