package patient

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/check"
	"github.com/chartstream/chartstream/commands/internal/decision"
)

// RecordDeath records that a patient died. After it, no new encounter or
// medication order may be started for the patient.
type RecordDeath struct {
	PatientID uuid.UUID
	// DeceasedAt is the time of death, RFC 3339, not in the future.
	DeceasedAt string
	// ExpectedVersion is the patient version the caller last saw
	// (If-Match); nil when the caller did not pin one.
	ExpectedVersion *int64
}

// Validate reports every problem with the input as one EINVALID error.
func (c RecordDeath) Validate(now time.Time) error {
	var p check.Problems
	p.Instant("deceased_at", c.DeceasedAt, now)
	return p.Err()
}

// decide records the death. Errors: EINVALID for bad input, ENOTFOUND for
// an unregistered patient, ECONFLICT for a death already recorded,
// EUNPROCESSABLE for a time of death before the birth date.
func (c RecordDeath) decide(p *Patient, now time.Time) ([]Event, error) {
	var problems check.Problems
	at, _ := problems.Instant("deceased_at", c.DeceasedAt, now)
	if err := problems.Err(); err != nil {
		return nil, err
	}
	if err := registered(p); err != nil {
		return nil, err
	}
	if p.Deceased() {
		return nil, chartstream.Errorf(chartstream.ECONFLICT, "death is already recorded")
	}
	if diedBeforeBirth(p.BirthDate, at) {
		return nil, chartstream.Errorf(chartstream.EUNPROCESSABLE, "time of death must not be before the birth date")
	}
	return []Event{PatientDeceased{DeceasedAt: at}}, nil
}

// CommandName is the command's name in logs and metrics.
func (RecordDeath) CommandName() string { return "patient.record_death" }

// Target is the patient's stream.
func (c RecordDeath) Target() chartstream.StreamRef { return Stream(c.PatientID) }

// Execute records the death; the result's ID is the patient id.
func (c RecordDeath) Execute(ctx context.Context, env decision.Env, tenant chartstream.TenantID, md chartstream.Metadata) (chartstream.CommandResult, error) {
	return change(ctx, env, tenant, md, c.PatientID, c.ExpectedVersion, c, c.PatientID, TypeErased, TypeDeceased, TypeDemographicsUpdated)
}

// diedBeforeBirth reports whether a death at deceasedAt is certainly before
// a birth on birthDate. The birth date has no time zone, so a death counts
// as before birth only if it was before the birth date even where the clock
// runs furthest ahead (UTC+14). An empty (erased) birth date is never after.
func diedBeforeBirth(birthDate string, deceasedAt time.Time) bool {
	const widestOffset = 14 * time.Hour
	return birthDate != "" && deceasedAt.UTC().Add(widestOffset).Format(time.DateOnly) < birthDate
}
