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
}

func (c *Config) setDefaults() {
	if c.Dates == "" {
		c.Dates = DatesYear
	}
	if c.MaxShiftDays == 0 {
		c.MaxShiftDays = 365
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
	return errors.Join(errs...)
}
