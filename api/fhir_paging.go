package api

import (
	"encoding/base64"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/projections"
)

// writeListPage pages a whole, stably ordered list (a patient's orders,
// allergies or conditions, which the read models return unpaged) the way
// the paged read models do: the cursor names the previous page's last item,
// never its sort key.
func writeListPage[T any](c echo.Context, typ string, all []T, page fhirPage, id func(T) uuid.UUID, res func(T) any) error {
	limit := page.Limit
	if limit == 0 {
		limit = projections.DefaultLimit
	}
	items := all
	if page.Cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(page.Cursor)
		after, perr := uuid.FromBytes(raw)
		i := slices.IndexFunc(all, func(t T) bool { return id(t) == after })
		// Only the spelling it made: base64 decoding ignores newlines and
		// stray bits, so other strings decode to the same id.
		if err != nil || perr != nil || i < 0 || base64.RawURLEncoding.EncodeToString(raw) != page.Cursor {
			return chartstream.Invalid(chartstream.FieldError{Field: "cursor", Reason: "is not a cursor of this listing"})
		}
		items = all[i+1:]
	}
	next := ""
	if len(items) > limit {
		items = items[:limit]
		last := id(items[limit-1])
		next = base64.RawURLEncoding.EncodeToString(last[:])
	}
	return writeSearchset(c, typ, items, next, id, res)
}

// dateBounds turns one value of a date search parameter into bounds on
// effective time, since <= t < until, a zero bound being open. The value
// is a year, month, day or RFC 3339 date-time, a date without zone being
// UTC's; its precision makes it a range, which the prefix (eq when none)
// compares with. Errors: EINVALID for other prefixes and malformed values.
func dateBounds(v string) (since, until time.Time, err error) {
	prefix := "eq"
	if len(v) >= 2 && v[0] >= 'a' && v[0] <= 'z' {
		prefix, v = v[:2], v[2:]
	}
	lo, hi, ok := dateRange(v)
	if ok {
		switch prefix {
		case "eq":
			return lo, hi, nil
		case "ge":
			return lo, time.Time{}, nil
		case "gt":
			return hi, time.Time{}, nil
		case "lt":
			return time.Time{}, lo, nil
		case "le":
			return time.Time{}, hi, nil
		}
	}
	return since, until, chartstream.Invalid(chartstream.FieldError{Field: "date",
		Reason: "must be a date or RFC 3339 date-time, prefixed by nothing, eq, ge, gt, le or lt"})
}

// dateRange is the range [lo, hi) a date or date-time value stands for.
func dateRange(v string) (lo, hi time.Time, ok bool) {
	for _, p := range []struct {
		layout     string
		y, m, days int
	}{{"2006", 1, 0, 0}, {"2006-01", 0, 1, 0}, {time.DateOnly, 0, 0, 1}} {
		if t, err := time.Parse(p.layout, v); err == nil {
			return t, t.AddDate(p.y, p.m, p.days), true
		}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return lo, hi, false
	}
	step := time.Second
	if t.Nanosecond() != 0 {
		step = time.Microsecond // PostgreSQL's precision
	}
	return t, t.Add(step), true
}
