package analytics

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
)

// Answers hold aggregates only. A count from 1 to MinCell-1 is a small
// cell: it is null and its field is named in the row's Suppressed list; a
// statistic (mean, minimum, maximum, mean length of stay) of fewer than
// MinCell values is null and named there too. Zero is shown, but for the
// complementary suppression that keeps a small cell from being worked out
// by subtraction from the cells beside it (see Census and Observations).
// Rows whose cells are all zero are left out.

// Answer is what a query returns: the rows, the range and threshold they
// were computed for.
type Answer[T any] struct {
	From    string `json:"from"`
	To      string `json:"to"`
	MinCell int    `json:"min_cell"`
	Rows    []T    `json:"rows"`
}

func newAnswer[T any](r Range, minCell int) Answer[T] {
	return Answer[T]{From: r.From.Format(time.DateOnly), To: r.To.Format(time.DateOnly), MinCell: minCell, Rows: []T{}}
}

// cells applies the small-cell rule to one row's values.
type cells struct {
	min        int
	suppressed []string
}

// small says whether n is a small cell.
func (c *cells) small(n int64) bool { return n > 0 && n < int64(c.min) }

// count is n, or nil (and field suppressed) for a small cell.
func (c *cells) count(field string, n int64) *int64 {
	return c.countUnless(field, n, false)
}

// countUnless is count, also suppressing n, zero included, when hide says
// so: a cell suppressed to keep another small cell from being subtracted
// out.
func (c *cells) countUnless(field string, n int64, hide bool) *int64 {
	if hide || c.small(n) {
		c.suppressed = append(c.suppressed, field)
		return nil
	}
	return &n
}

// stat is v, or nil (and field suppressed) when it stems from fewer than
// MinCell values; nil when there are no values.
func (c *cells) stat(field string, v *float64, of int64) *float64 {
	if v == nil || of == 0 {
		return nil
	}
	if of < int64(c.min) {
		c.suppressed = append(c.suppressed, field)
		return nil
	}
	return v
}

// CensusRow is one location's census on one day: the patients there at the
// end of the day, the day's admissions and discharges there, and the mean
// length of stay of those discharged, in hours.
type CensusRow struct {
	Day                   string   `json:"day"`
	Location              string   `json:"location"`
	Census                *int64   `json:"census"`
	Admissions            *int64   `json:"admissions"`
	Discharges            *int64   `json:"discharges"`
	MeanLengthOfStayHours *float64 `json:"mean_length_of_stay_hours"`
	Suppressed            []string `json:"suppressed,omitempty"`
}

// censusSQL reads a location's census days over a range ($2 to $3, of
// location $4 or all, names shown from $5 arrivals on). Its cost follows
// the range and the days since its start, never the tenant's history
// (TestCensusCostDoesNotGrowWithHistory).
const censusSQL = `
		WITH since AS (
			-- The net flows from the range's start on: the census it
			-- starts from is the location's total less them, so no day
			-- before the range is read, however long the history.
			SELECT location, sum(admissions + transfers_in - discharges - transfers_out) AS net
			FROM analytics_census_daily
			WHERE tenant_id = $1 AND day >= $2 AND ($4 = '' OR location = $4) GROUP BY location),
		totals AS (
			-- Who ever arrived (the name's own cell) and the census the
			-- range starts from.
			SELECT t.location, t.first_day, t.arrivals, t.net - coalesce(s.net, 0) AS before
			FROM analytics_census_totals t LEFT JOIN since s ON s.location = t.location
			WHERE t.tenant_id = $1 AND ($4 = '' OR t.location = $4)),
		locs AS (SELECT location FROM totals WHERE first_day <= $3 AND arrivals >= $5),
		before AS (SELECT location, before AS n FROM totals),
		los AS (
			SELECT (ended_at AT TIME ZONE 'UTC')::date AS day, location, count(*) AS n,
				avg(extract(epoch FROM length_of_stay) / 3600)::float8 AS hours
			FROM analytics_encounters
			-- The range's UTC days as instants, so the index on when
			-- encounters ended serves it (a date compared with a
			-- timestamptz is not an index condition); none started after
			-- the range, so later months are not read.
			WHERE tenant_id = $1 AND ended_at >= ($2::date)::timestamp AT TIME ZONE 'UTC'
				AND ended_at < ($3::date + 1)::timestamp AT TIME ZONE 'UTC' AND day <= $3 AND ($4 = '' OR location = $4)
			GROUP BY 1, 2),
		grid AS (
			SELECT d.day::date AS day, l.location, coalesce(c.admissions, 0) AS admissions, coalesce(c.discharges, 0) AS discharges,
				coalesce(c.admissions + c.transfers_in - c.discharges - c.transfers_out, 0) AS net
			FROM generate_series($2::date, $3::date, interval '1 day') AS d(day) CROSS JOIN locs AS l
			-- The range's days only, said outright: the planner does not
			-- derive it from the series, and would read every partition.
			LEFT JOIN analytics_census_daily c ON c.tenant_id = $1 AND c.day = d.day::date AND c.location = l.location
				AND c.day BETWEEN $2 AND $3),
		series AS (
			SELECT g.day, g.location, g.admissions, g.discharges, g.net,
				coalesce(b.n, 0) + sum(g.net) OVER (PARTITION BY g.location ORDER BY g.day) AS census
			FROM grid g LEFT JOIN before b ON b.location = g.location)
		SELECT s.day, s.location, s.census::bigint, (s.census - s.net)::bigint, s.admissions, s.discharges, coalesce(los.n, 0), los.hours
		FROM series s LEFT JOIN los ON los.day = s.day AND los.location = s.location
		WHERE s.census <> 0 OR s.admissions <> 0 OR s.discharges <> 0
		ORDER BY s.day, s.location`

// Census returns the daily census per location over r, of one location
// when location is not empty. Transfers count as leaving one location and
// arriving at another; they are not shown apart.
//
// A day's census is the previous day's plus admissions and transfers in,
// less discharges and transfers out, so cells shown beside a suppressed
// one could give it away by subtraction. Complementary suppression: a
// row's admissions and discharges are both suppressed, zero included,
// when either is a small cell, or when the row's census or the previous
// day's census (shown in the row before, or in an answer starting a day
// earlier) is one. What is suppressed depends only on the data of the
// location's row and the day before, never on the range asked for.
//
// A location is a label clinicians type, and it can name a person: "the
// patient's home, 12 Elm St". So a location's name is a cell too: a
// location fewer than MinCell patients ever arrived at (admitted or
// transferred in, over all time) is left out of the answer, rows and
// name, as if it held nobody. Wards and clinics pass that bar within days.
func (r *Reader) Census(ctx context.Context, tenant chartstream.TenantID, rg Range, location string) (Answer[CensusRow], Lag, error) {
	a := newAnswer[CensusRow](rg, r.cfg.MinCell)
	lag, err := r.read(ctx, tenant, censusSQL, []any{rg.From, rg.To, location, r.cfg.MinCell}, func(rows pgx.Rows) error {
		for rows.Next() {
			var day time.Time
			var row CensusRow
			var census, prev, adm, dis, losN int64
			var hours *float64
			if err := rows.Scan(&day, &row.Location, &census, &prev, &adm, &dis, &losN, &hours); err != nil {
				return err
			}
			c := cells{min: r.cfg.MinCell}
			row.Day = day.Format(time.DateOnly)
			flows := c.small(adm) || c.small(dis) || c.small(census) || c.small(prev)
			row.Census = c.count("census", census)
			row.Admissions, row.Discharges = c.countUnless("admissions", adm, flows), c.countUnless("discharges", dis, flows)
			row.MeanLengthOfStayHours = c.stat("mean_length_of_stay_hours", hours, losN)
			row.Suppressed = c.suppressed
			a.Rows = append(a.Rows, row)
		}
		return nil
	})
	return a, lag, err
}

// ObservationRow is one LOINC code's observations in one unit on one day:
// how many, and of the numeric ones how many, their mean, minimum and
// maximum. Unit is "" for coded results.
type ObservationRow struct {
	Day          string   `json:"day"`
	Code         string   `json:"code"`
	Unit         string   `json:"unit"`
	Observations *int64   `json:"observations"`
	NumericCount *int64   `json:"numeric_count"`
	Mean         *float64 `json:"mean"`
	Min          *float64 `json:"min"`
	Max          *float64 `json:"max"`
	Suppressed   []string `json:"suppressed,omitempty"`
}

// Observations returns the observations per LOINC code, unit and day over
// r, of one code when code is not empty. The commands record a unit with
// numeric results only, so a row's observations are all numeric or all
// coded; should an event mix them, the numeric count is suppressed when
// the coded ones are a small cell.
func (r *Reader) Observations(ctx context.Context, tenant chartstream.TenantID, rg Range, code string) (Answer[ObservationRow], Lag, error) {
	a := newAnswer[ObservationRow](rg, r.cfg.MinCell)
	lag, err := r.read(ctx, tenant, `
		SELECT day, code, unit, observations, numeric_count,
			(value_sum / nullif(numeric_count, 0))::float8, value_min::float8, value_max::float8
		FROM analytics_observations_daily
		WHERE tenant_id = $1 AND day BETWEEN $2 AND $3 AND ($4 = '' OR code = $4)
		ORDER BY day, code, unit`, []any{rg.From, rg.To, code}, func(rows pgx.Rows) error {
		for rows.Next() {
			var day time.Time
			var row ObservationRow
			var n, numeric int64
			var mean, lo, hi *float64
			if err := rows.Scan(&day, &row.Code, &row.Unit, &n, &numeric, &mean, &lo, &hi); err != nil {
				return err
			}
			c := cells{min: r.cfg.MinCell}
			row.Day = day.Format(time.DateOnly)
			// The coded ones (observations less numeric ones) are a cell
			// too, though not shown: when they are few, the numeric count
			// is suppressed, or subtraction would give them.
			row.Observations, row.NumericCount = c.count("observations", n), c.countUnless("numeric_count", numeric, c.small(n-numeric))
			row.Mean, row.Min, row.Max = c.stat("mean", mean, numeric), c.stat("min", lo, numeric), c.stat("max", hi, numeric)
			row.Suppressed = c.suppressed
			a.Rows = append(a.Rows, row)
		}
		return nil
	})
	return a, lag, err
}

// MedicationRow is one RxNorm code's orders on one day.
type MedicationRow struct {
	Day        string   `json:"day"`
	Code       string   `json:"code"`
	Orders     *int64   `json:"orders"`
	Suppressed []string `json:"suppressed,omitempty"`
}

// Medications returns the medication orders per RxNorm code and day over r.
func (r *Reader) Medications(ctx context.Context, tenant chartstream.TenantID, rg Range) (Answer[MedicationRow], Lag, error) {
	a := newAnswer[MedicationRow](rg, r.cfg.MinCell)
	lag, err := r.read(ctx, tenant, `
		SELECT day, code, orders FROM analytics_medication_orders_daily
		WHERE tenant_id = $1 AND day BETWEEN $2 AND $3
		ORDER BY day, code`, []any{rg.From, rg.To}, func(rows pgx.Rows) error {
		for rows.Next() {
			var day time.Time
			var row MedicationRow
			var n int64
			if err := rows.Scan(&day, &row.Code, &n); err != nil {
				return err
			}
			c := cells{min: r.cfg.MinCell}
			row.Day, row.Orders, row.Suppressed = day.Format(time.DateOnly), c.count("orders", n), c.suppressed
			a.Rows = append(a.Rows, row)
		}
		return nil
	})
	return a, lag, err
}
