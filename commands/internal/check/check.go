// Package check validates command input. It gathers every problem so that a
// caller sees them all in one response, and its reasons say what is wrong
// without echoing the value: command input is PHI.
package check

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/chartstream/chartstream"
)

// Limits shared by every aggregate, so that the same kind of field is
// equally long everywhere.
const (
	// MaxCode bounds a code from a terminology (LOINC, RxNorm, SNOMED CT).
	MaxCode = 64
	// MaxSystem bounds a terminology's URI.
	MaxSystem = 256
	// MaxDisplay bounds a code's human-readable display.
	MaxDisplay = 256
	// MaxNote bounds free text: a reaction, a reason.
	MaxNote = 1000
)

// clockSkew is how far in the future an instant may lie: clocks of bedside
// devices and of this server are never quite in step.
const clockSkew = 5 * time.Minute

// widestOffset is the most any time zone runs ahead of UTC (UTC+14). A date
// is "today" somewhere until UTC has caught up with it.
const widestOffset = 14 * time.Hour

// Problems collects field problems. The zero value is ready to use.
type Problems struct {
	fields []chartstream.FieldError
}

// Add records that field is wrong for the given (PHI-free) reason.
func (p *Problems) Add(field, reason string) {
	p.fields = append(p.fields, chartstream.FieldError{Field: field, Reason: reason})
}

// Err returns nil when no problem was recorded, and otherwise an EINVALID
// *chartstream.Error listing every problem.
func (p *Problems) Err() error {
	if len(p.fields) == 0 {
		return nil
	}
	return chartstream.Invalid(p.fields...)
}

// Text checks a one-line value: present if required, at most max
// characters, and free of control characters. It reports whether the value
// is present and acceptable.
func (p *Problems) Text(field, value string, required bool, max int) bool {
	return p.text(field, value, required, max, func(r rune) bool { return unicode.IsControl(r) })
}

// Note checks free text, which unlike Text may span lines.
func (p *Problems) Note(field, value string, required bool, max int) bool {
	return p.text(field, value, required, max, func(r rune) bool {
		return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t'
	})
}

func (p *Problems) text(field, value string, required bool, max int, forbidden func(rune) bool) bool {
	switch {
	case strings.TrimSpace(value) == "":
		if required {
			p.Add(field, "is required")
		}
		return false
	case !utf8.ValidString(value):
		p.Add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(value) > max:
		p.Add(field, fmt.Sprintf("must be at most %d characters", max))
	case strings.IndexFunc(value, forbidden) >= 0:
		p.Add(field, "must not contain control characters")
	default:
		return true
	}
	return false
}

// Token checks a required identifier-like value (a code, an MRN, a unit):
// at most max characters, no white space or control characters.
func (p *Problems) Token(field, value string, max int) bool {
	if !p.Text(field, value, true, max) {
		return false
	}
	if strings.IndexFunc(value, unicode.IsSpace) >= 0 {
		p.Add(field, "must not contain spaces")
		return false
	}
	return true
}

// OneOf checks that value is one of allowed.
func (p *Problems) OneOf(field, value string, allowed ...string) bool {
	for _, a := range allowed {
		if value == a {
			return true
		}
	}
	if value == "" {
		p.Add(field, "is required")
	} else {
		p.Add(field, "must be one of: "+strings.Join(allowed, ", "))
	}
	return false
}

// Date checks a calendar date YYYY-MM-DD that is not in the future anywhere
// on earth at now. It returns the date at midnight UTC and whether it is
// acceptable; an empty value is reported as missing.
func (p *Problems) Date(field, value string, now time.Time) (time.Time, bool) {
	if value == "" {
		p.Add(field, "is required")
		return time.Time{}, false
	}
	d, err := time.Parse(time.DateOnly, value)
	if err != nil {
		p.Add(field, "must be a date YYYY-MM-DD")
		return time.Time{}, false
	}
	if d.After(now.UTC().Add(widestOffset)) {
		p.Add(field, "must not be in the future")
		return time.Time{}, false
	}
	return d, true
}

// Instant checks a point in time in RFC 3339 form that is not in the future
// (allowing for clock skew). It returns the instant in UTC and whether it is
// acceptable; an empty value is reported as missing.
func (p *Problems) Instant(field, value string, now time.Time) (time.Time, bool) {
	if value == "" {
		p.Add(field, "is required")
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, value)
	if err != nil {
		p.Add(field, "must be a date and time in RFC 3339 form")
		return time.Time{}, false
	}
	if t.After(now.Add(clockSkew)) {
		p.Add(field, "must not be in the future")
		return time.Time{}, false
	}
	return t.UTC(), true
}

// Finite checks that a number is neither NaN nor infinite.
func (p *Problems) Finite(field string, v float64) bool {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		p.Add(field, "must be a finite number")
		return false
	}
	return true
}

// Coding checks a coded concept: a required code and system, an optional
// display. When systems is not empty the system must be one of them.
// Fields are named prefix.code, prefix.system and prefix.display; an empty
// prefix names them code, system and display.
func (p *Problems) Coding(prefix, code, system, display string, systems ...string) {
	name := func(f string) string {
		if prefix == "" {
			return f
		}
		return prefix + "." + f
	}
	p.Token(name("code"), code, MaxCode)
	if len(systems) > 0 {
		p.OneOf(name("system"), system, systems...)
	} else {
		p.Token(name("system"), system, MaxSystem)
	}
	p.Text(name("display"), display, false, MaxDisplay)
}
