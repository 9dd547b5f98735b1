package deid

import "errors"

// DateMode is how dates are de-identified.
type DateMode string

// The date modes.
const (
	// DatesYear keeps only the year: Safe Harbor.
	DatesYear DateMode = "year"
	// DatesShift moves every date of a patient by the same keyed number
	// of days, so intervals (length of stay, time to an observation)
	// survive. It is not Safe Harbor: a shifted date is still a date, and
	// releasing it needs an expert's determination.
	DatesShift DateMode = "shift"
)

// Config configures de-identification.
type Config struct {
	// Dates is "year" (Safe Harbor) or "shift". Default "year".
	Dates DateMode
	// MaxShiftDays bounds a patient's shift in shift mode: a keyed
	// number of days in [-MaxShiftDays, MaxShiftDays], never 0. Default
	// 365.
	MaxShiftDays int
	// AgeSpanYears is the longest span, in years, between the first and
	// the last de-identified event of a patient that any consumer holds
	// (the stream's retention plus what consumers keep under their data
	// use agreement). Ages are exact below 90 - AgeSpanYears and the one
	// category "<90-AgeSpanYears>+" from there on, so that no consumer
	// can derive an age over 89 from ages and event years within the
	// span (Safe Harbor, 164.514(b)(2)(i)(C)). Default 10 ("80+").
	AgeSpanYears int
}

func (c *Config) setDefaults() {
	if c.Dates == "" {
		c.Dates = DatesYear
	}
	if c.MaxShiftDays == 0 {
		c.MaxShiftDays = 365
	}
	if c.AgeSpanYears == 0 {
		c.AgeSpanYears = 10
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Dates != DatesYear && c.Dates != DatesShift {
		errs = append(errs, errors.New("deid: dates must be year or shift"))
	}
	if c.MaxShiftDays < 1 || c.MaxShiftDays > 3650 {
		errs = append(errs, errors.New("deid: max shift days must be between 1 and 3650"))
	}
	if c.AgeSpanYears < 1 || c.AgeSpanYears > 60 {
		errs = append(errs, errors.New("deid: the age span must be between 1 and 60 years"))
	}
	return errors.Join(errs...)
}
