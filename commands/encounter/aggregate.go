// Package encounter is the encounter aggregate: a patient's visit or stay,
// from start through transfers to discharge. A new encounter needs a living,
// registered patient, which it consults (patient.Consult); every command
// refuses an erased patient's encounter.
package encounter

import (
	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

// Status is where an encounter is in its life.
type Status string

// The encounter statuses. An encounter not started has the empty status.
const (
	StatusInProgress Status = "in-progress"
	StatusDischarged Status = "discharged"
)

// Encounter is an encounter as its events left it.
type Encounter struct {
	// ID is the encounter id, which is also the stream id.
	ID uuid.UUID
	// Version is the version of the last event applied; 0 for an
	// encounter never started.
	Version   int64
	PatientID uuid.UUID
	Class     Class
	Location  string
	Status    Status
}

// Replay builds an encounter from decoded events, numbering them from
// version 1.
func Replay(id uuid.UUID, events ...Event) *Encounter {
	e := &Encounter{ID: id}
	for _, ev := range events {
		e.apply(ev)
		e.Version++
	}
	return e
}

// Started reports whether the encounter was ever started.
func (e *Encounter) Started() bool { return e.Status != "" }

func (e *Encounter) apply(ev Event) {
	switch ev := ev.(type) {
	case EncounterStarted:
		e.PatientID, e.Class, e.Location, e.Status = ev.PatientID, ev.Class, ev.Location, StatusInProgress
	case PatientTransferred:
		e.Location = ev.Location
	case EncounterDischarged:
		e.Status = StatusDischarged
	}
}

// inProgress fails with ENOTFOUND for an encounter never started and with
// ECONFLICT for one already discharged: transfers and discharges need the
// patient still in care.
func (e *Encounter) inProgress() error {
	switch e.Status {
	case "":
		return errNotFound()
	case StatusDischarged:
		return chartstream.Errorf(chartstream.ECONFLICT, "encounter is already discharged")
	}
	return nil
}

// Stream returns the reference of the encounter's stream.
func Stream(id uuid.UUID) chartstream.StreamRef {
	return chartstream.StreamRef{Type: StreamType, ID: id}
}

func errNotFound() error { return chartstream.Errorf(chartstream.ENOTFOUND, "encounter not found") }
