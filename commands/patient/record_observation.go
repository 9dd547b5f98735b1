package patient

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/check"
	"github.com/chartstream/chartstream/commands/internal/decision"
)

// maxUnit bounds a UCUM unit expression such as "mm[Hg]" or "kg/m2".
const maxUnit = 32

// RecordObservation records a vital sign or lab result, coded in LOINC: a
// number with its UCUM unit, or a coded value — exactly one of the two.
type RecordObservation struct {
	PatientID uuid.UUID
	// ObservationID is the new observation's id; zero lets the handler
	// choose one.
	ObservationID uuid.UUID
	// Code is a LOINC code; System must be LOINC.
	Code   string
	System string
	// Value and Unit (UCUM) give a numeric result.
	Value *float64
	Unit  string
	// ValueCode gives a coded result instead.
	ValueCode string
	// EffectiveAt is when the observation was made, RFC 3339, not in the
	// future.
	EffectiveAt string
	// EncounterID optionally names the encounter during which it was made.
	// It is not checked against the encounter's stream: the patient
	// aggregate cannot see encounters.
	EncounterID *uuid.UUID
	// ExpectedVersion is the patient version the caller last saw
	// (If-Match); nil when the caller did not pin one.
	ExpectedVersion *int64
}

// Validate reports every problem with the input as one EINVALID error.
func (c RecordObservation) Validate(now time.Time) error {
	var p check.Problems
	c.check(&p, now)
	return p.Err()
}

// check validates and returns the parsed effective time.
func (c RecordObservation) check(p *check.Problems, now time.Time) time.Time {
	p.Coding("", c.Code, c.System, "", LOINC)
	switch {
	case c.Value != nil && c.ValueCode == "":
		p.Finite("value", *c.Value)
		p.Token("unit", c.Unit, maxUnit)
	case c.Value == nil && c.ValueCode != "":
		p.Token("value_code", c.ValueCode, check.MaxCode)
		if c.Unit != "" {
			p.Add("unit", "must be empty with value_code")
		}
	default:
		p.Add("value", "exactly one of value (with unit) or value_code is required")
	}
	at, _ := p.Instant("effective_at", c.EffectiveAt, now)
	if c.EncounterID != nil && *c.EncounterID == uuid.Nil {
		p.Add("encounter_id", "must be a non-nil UUID when given")
	}
	return at
}

// decide records the observation. Errors: EINVALID for bad input, ENOTFOUND
// for an unregistered patient, EUNPROCESSABLE for an erased record. The
// observation's id is new (random, or derived from the command's id for a
// retried request), so it needs no check against the past.
// Observations after death are accepted: late lab results are real.
func (c RecordObservation) decide(p *Patient, now time.Time) ([]Event, error) {
	var problems check.Problems
	at := c.check(&problems, now)
	if err := problems.Err(); err != nil {
		return nil, err
	}
	if c.ObservationID == uuid.Nil {
		return nil, chartstream.Invalid(chartstream.FieldError{Field: "observation_id", Reason: "is required"})
	}
	if err := registered(p); err != nil {
		return nil, err
	}
	return []Event{ObservationRecorded{
		ObservationID: c.ObservationID,
		Code:          c.Code,
		System:        c.System,
		Value:         c.Value,
		Unit:          c.Unit,
		ValueCode:     c.ValueCode,
		EffectiveAt:   at,
		EncounterID:   c.EncounterID,
	}}, nil
}

// CommandName is the command's name in logs and metrics.
func (RecordObservation) CommandName() string { return "patient.record_observation" }

// Target is the patient's stream.
func (c RecordObservation) Target() chartstream.StreamRef { return Stream(c.PatientID) }

// Execute records the observation; the result's ID is the observation
// id. Monitors, nurses and lab feeds record observations on one patient at
// once: only an erasure coming first changes the decision.
func (c RecordObservation) Execute(ctx context.Context, env decision.Env, tenant chartstream.TenantID, md chartstream.Metadata) (chartstream.CommandResult, error) {
	if c.ObservationID == uuid.Nil {
		c.ObservationID = decision.NewID(md, "observation")
	}
	return change(ctx, env, tenant, md, c.PatientID, c.ExpectedVersion, c, c.ObservationID, TypeErased)
}
