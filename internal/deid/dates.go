package deid

import (
	"encoding/binary"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// ageCeiling is the age from which Safe Harbor aggregates ages (and hides
// every date element that would tell them) into one category.
const ageCeiling = 90

// dateLayout is a calendar date as events record birth dates and onsets.
const dateLayout = "2006-01-02"

// dater de-identifies a patient's dates: to the year, or shifted by the
// patient's offset.
type dater struct {
	shift bool
	days  int
	// topAge is the first age published only as a category: 90 less
	// the age span (see Config.AgeSpanYears).
	topAge int
}

// dates returns the dater of a patient. Shift mode without a known
// patient falls back to years: an offset must be the patient's, or
// intervals between its events would lie.
func (d *Deidentifier) dates(keys pseudonyms, patient uuid.UUID) dater {
	top := ageCeiling - d.cfg.AgeSpanYears
	if d.cfg.Dates != DatesShift || patient == uuid.Nil {
		return dater{topAge: top}
	}
	return dater{shift: true, days: keys.shiftDays(patient, d.cfg.MaxShiftDays), topAge: top}
}

// timestamp de-identifies an instant: its year, or the shifted instant
// in UTC.
func (d dater) timestamp(t time.Time) string {
	if !d.shift {
		return strconv.Itoa(t.UTC().Year())
	}
	return t.UTC().AddDate(0, 0, d.days).Format(time.RFC3339Nano)
}

// date de-identifies a calendar date or an RFC 3339 timestamp, keeping
// its form when shifted; false when s is neither.
func (d dater) date(s string) (string, bool) {
	if t, err := time.Parse(dateLayout, s); err == nil {
		if !d.shift {
			return strconv.Itoa(t.Year()), true
		}
		return t.AddDate(0, 0, d.days).Format(dateLayout), true
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return d.timestamp(t), true
	}
	return "", false
}

// birth turns a birth date into "age": the age in whole years when the
// event was recorded, or, from topAge on, the category "<topAge>+". No
// element of the birth date is kept, not even its year: with the year of
// every later event beside the patient's pseudonym, a birth year (or an
// exact age near 90) would let a consumer work out an age over 89 years
// after it was published. An exact age is at most 89 - AgeSpanYears, so
// however far apart two events a consumer holds are (up to the span), no
// age it can derive from them reaches 90.
func (d dater) birth(out map[string]any, s string, at time.Time) {
	born, err := time.Parse(dateLayout, s)
	if err != nil {
		return
	}
	age := Age(born, at)
	if age < 0 {
		return
	}
	out["age"] = d.ageOf(age)
}

// ageOf is the published form of an age: itself, or the top category.
func (d dater) ageOf(age int) string {
	if age >= d.topAge {
		return strconv.Itoa(d.topAge) + "+"
	}
	return strconv.Itoa(age)
}

// Age is the age in whole years on at of someone born on born; negative
// when at is before the birth.
func Age(born, at time.Time) int {
	at = at.UTC()
	age := at.Year() - born.Year()
	if at.Month() < born.Month() || (at.Month() == born.Month() && at.Day() < born.Day()) {
		age--
	}
	return age
}

// shiftDays is the patient's keyed offset: in [-max, max], never 0.
func (p pseudonyms) shiftDays(patient uuid.UUID, max int) int {
	sum := p.mac("date-shift", patient[:])
	n := binary.BigEndian.Uint64(sum[:8])
	days := int(n%uint64(max)) + 1
	if sum[8]&1 == 1 {
		return -days
	}
	return days
}
