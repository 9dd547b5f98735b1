package analytics

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/chartstream/chartstream"
)

// MaxDays is the longest range one request may cover, both days included.
const MaxDays = 366

// DefaultDays is the range a request without from covers: the 30 days up
// to to.
const DefaultDays = 30

// maxCode and maxLocation bound the filters (as the commands bound the
// values they record).
const (
	maxCode     = 64
	maxLocation = 200
)

// Range is a span of UTC days, both included.
type Range struct {
	From, To time.Time
}

// Days is how many days r covers.
func (r Range) Days() int { return int(r.To.Sub(r.From)/(24*time.Hour)) + 1 }

// ParseRange reads from and to (YYYY-MM-DD, either may be empty): to
// defaults to today (UTC, at now), from to DefaultDays days up to to.
// Errors: EINVALID naming the field for a malformed date, from after to,
// or a range over MaxDays days.
func ParseRange(from, to string, now time.Time) (Range, error) {
	var r Range
	var fields []chartstream.FieldError
	parse := func(name, v string, def time.Time) time.Time {
		if v == "" {
			return def
		}
		d, err := time.Parse(time.DateOnly, v)
		if err != nil {
			fields = append(fields, chartstream.FieldError{Field: name, Reason: "must be a date YYYY-MM-DD"})
		}
		return d
	}
	r.To = parse("to", to, Day(now))
	r.From = parse("from", from, r.To.AddDate(0, 0, -(DefaultDays-1)))
	switch {
	case len(fields) > 0:
	case r.From.After(r.To):
		fields = append(fields, chartstream.FieldError{Field: "from", Reason: "must not be after to"})
	case r.Days() > MaxDays:
		fields = append(fields, chartstream.FieldError{Field: "from", Reason: "the range must not exceed 366 days"})
	}
	if len(fields) > 0 {
		return Range{}, chartstream.Invalid(fields...)
	}
	return r, nil
}

// CheckFilter checks an optional filter value (a code, a location): at most
// max characters of printable text, no surrounding space. The reason never
// echoes the value.
func CheckFilter(field, value string, max int) error {
	switch {
	case value == "":
		return nil
	case !utf8.ValidString(value) || utf8.RuneCountInString(value) > max:
		return chartstream.Invalid(chartstream.FieldError{Field: field, Reason: "must be at most " + strconv.Itoa(max) + " characters"})
	case strings.IndexFunc(value, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0, strings.TrimSpace(value) != value:
		return chartstream.Invalid(chartstream.FieldError{Field: field, Reason: "must be printable text without surrounding spaces"})
	}
	return nil
}

// CheckCode checks the code filter (see CheckFilter).
func CheckCode(v string) error { return CheckFilter("code", v, maxCode) }

// CheckLocation checks the location filter (see CheckFilter).
func CheckLocation(v string) error { return CheckFilter("location", v, maxLocation) }
