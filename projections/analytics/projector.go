// Package analytics is the analytics read model (migration 0009): daily
// census flows per location, encounters with their length of stay,
// observations per LOINC code and day, medication orders per RxNorm code
// and day. It holds aggregates and ids, never PHI, and needs none: the
// fields it reads are outside every event's sealed PHI, so events are
// applied as the relay publishes them, still sealed.
//
// Apply adds to counts and sums, so it is not idempotent on its own: the
// analytics projector (workers.AnalyticsProjector) applies each event once,
// advancing the tenant's analytics checkpoint in the same transaction.
// Queries (queries.go) read the tables on the hot standby.
//
// Days are UTC days: of an observation's effective time, of the recording
// of an order or an encounter event.
package analytics

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/encounter"
	"github.com/chartstream/chartstream/commands/medicationorder"
	"github.com/chartstream/chartstream/commands/patient"
)

// Day is the UTC day of t, at midnight UTC.
func Day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// month is the first day of t's UTC month.
func month(t time.Time) time.Time {
	y, m, _ := t.UTC().Date()
	return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
}

// Months returns the months (their first days, ascending) whose partitions
// applying events writes into. Events of other kinds write nothing.
func Months(events []chartstream.Event) ([]time.Time, error) {
	var out []time.Time
	for _, e := range events {
		at, ok, err := dayOf(e)
		if err != nil {
			return nil, err
		}
		if ok && !slices.Contains(out, month(at)) {
			out = append(out, month(at))
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out, nil
}

// dayOf is the day e is counted on, and whether the analytics count it.
func dayOf(e chartstream.Event) (time.Time, bool, error) {
	switch e.Type {
	case encounter.TypeStarted, encounter.TypePatientTransferred, encounter.TypeDischarged, medicationorder.TypePrescribed:
		return Day(e.RecordedAt), true, nil
	case patient.TypeObservationRecorded:
		o, err := decode[patient.ObservationRecorded](e, patient.Decode)
		return Day(o.EffectiveAt), err == nil, err
	}
	return time.Time{}, false, nil
}

// Apply applies a tenant's events, in order, in tx, in one round trip
// (see Queue).
func Apply(ctx context.Context, tx pgx.Tx, events []chartstream.Event) error {
	b := &pgx.Batch{}
	if err := Queue(b, events); err != nil {
		return err
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("analytics: apply %d events: %w", len(events), err)
	}
	return nil
}

// Queue queues on b the statements that apply a tenant's events, in order,
// so that a caller can send them in one pipeline with its own.
// Observations and orders only add up, so each kind is one set-based
// statement; encounter events depend on what came before them and are one
// statement each, in order. Partitions for Months(events) must exist.
// Errors: EINVALID for an event whose payload this code cannot read.
func Queue(b *pgx.Batch, events []chartstream.Event) error {
	if len(events) == 0 {
		return nil
	}
	tenant := events[0].Tenant
	var obs observationRows
	var meds medicationRows
	for _, e := range events {
		switch e.Type {
		case patient.TypeObservationRecorded:
			o, err := decode[patient.ObservationRecorded](e, patient.Decode)
			if err != nil {
				return err
			}
			obs.add(o)
		case medicationorder.TypePrescribed:
			m, err := decode[medicationorder.MedicationPrescribed](e, medicationorder.Decode)
			if err != nil {
				return err
			}
			meds.days, meds.codes = append(meds.days, Day(e.RecordedAt)), append(meds.codes, m.Medication.Code)
		case encounter.TypeStarted, encounter.TypePatientTransferred, encounter.TypeDischarged:
			if err := queueEncounter(b, e); err != nil {
				return err
			}
		}
	}
	obs.queue(b, tenant)
	meds.queue(b, tenant)
	return nil
}

// decode reads e's payload as T, or fails with EINVALID naming the event by
// id (the payload's text could be PHI).
func decode[T any, E any](e chartstream.Event, dec func(chartstream.Event) (E, error)) (T, error) {
	var zero T
	p, err := dec(e)
	if err != nil {
		return zero, &chartstream.Error{Code: chartstream.EINVALID, Message: "analytics cannot read event " + e.ID.String(), Err: err}
	}
	v, ok := any(p).(T)
	if !ok {
		return zero, chartstream.Errorf(chartstream.EINVALID, "analytics: event %s decoded as %T", e.ID, p)
	}
	return v, nil
}

// observationRows are a batch's observations, summed per key in SQL, where
// numeric is exact.
type observationRows struct {
	days         []time.Time
	codes, units []string
	values       []pgtype.Text
}

func (r *observationRows) add(o patient.ObservationRecorded) {
	var v pgtype.Text
	if o.Value != nil {
		// As text, so the numeric sum is exact for what was recorded.
		v = pgtype.Text{String: strconv.FormatFloat(*o.Value, 'f', -1, 64), Valid: true}
	}
	r.days, r.codes, r.units, r.values = append(r.days, Day(o.EffectiveAt)), append(r.codes, o.Code), append(r.units, o.Unit), append(r.values, v)
}

func (r *observationRows) queue(b *pgx.Batch, tenant chartstream.TenantID) {
	if len(r.days) == 0 {
		return
	}
	b.Queue(`INSERT INTO analytics_observations_daily AS a (tenant_id, day, code, unit, observations, numeric_count, value_sum, value_min, value_max)
		SELECT $1, o.day, o.code, o.unit, count(*), count(o.value), sum(o.value), min(o.value), max(o.value)
		FROM unnest($2::date[], $3::text[], $4::text[], $5::numeric[]) AS o(day, code, unit, value)
		GROUP BY o.day, o.code, o.unit
		ON CONFLICT (tenant_id, day, code, unit) DO UPDATE SET
			observations = a.observations + excluded.observations,
			numeric_count = a.numeric_count + excluded.numeric_count,
			value_sum = CASE WHEN excluded.numeric_count = 0 THEN a.value_sum ELSE coalesce(a.value_sum, 0) + excluded.value_sum END,
			value_min = least(a.value_min, excluded.value_min),
			value_max = greatest(a.value_max, excluded.value_max)`,
		tenant, r.days, r.codes, r.units, r.values)
}

// medicationRows are a batch's prescriptions.
type medicationRows struct {
	days  []time.Time
	codes []string
}

func (r *medicationRows) queue(b *pgx.Batch, tenant chartstream.TenantID) {
	if len(r.days) == 0 {
		return
	}
	b.Queue(`INSERT INTO analytics_medication_orders_daily AS a (tenant_id, day, code, orders)
		SELECT $1, m.day, m.code, count(*) FROM unnest($2::date[], $3::text[]) AS m(day, code)
		GROUP BY m.day, m.code
		ON CONFLICT (tenant_id, day, code) DO UPDATE SET orders = a.orders + excluded.orders`,
		tenant, r.days, r.codes)
}

// censusUpsert adds the flows of its SELECT's rows (day, location,
// admissions, discharges, transfers_in, transfers_out) to the census. The
// table's trigger adds them to the locations' totals (migration 0015).
const censusUpsert = `INSERT INTO analytics_census_daily AS c (tenant_id, day, location, admissions, discharges, transfers_in, transfers_out)
	SELECT $1, f.day, f.location, f.admissions, f.discharges, f.transfers_in, f.transfers_out FROM flows AS f
	ON CONFLICT (tenant_id, day, location) DO UPDATE SET
		admissions = c.admissions + excluded.admissions, discharges = c.discharges + excluded.discharges,
		transfers_in = c.transfers_in + excluded.transfers_in, transfers_out = c.transfers_out + excluded.transfers_out`

// queueEncounter queues the one statement an encounter event makes: the
// encounter's row and the census flows it causes, at the location the row
// holds (all the CTEs of a statement see the rows as they were before it).
// An encounter whose start was never applied (set aside) changes nothing.
func queueEncounter(b *pgx.Batch, e chartstream.Event) error {
	day := Day(e.RecordedAt)
	switch e.Type {
	case encounter.TypeStarted:
		p, err := decode[encounter.EncounterStarted](e, encounter.Decode)
		if err != nil {
			return err
		}
		b.Queue(`WITH enc AS (
				INSERT INTO analytics_encounters (tenant_id, day, encounter_id, class, admitted_location, location, started_at)
				VALUES ($1, $2, $3, $4, $5, $5, $6) ON CONFLICT DO NOTHING RETURNING day, location),
			flows AS (SELECT day, location, 1 AS admissions, 0 AS discharges, 0 AS transfers_in, 0 AS transfers_out FROM enc)
			`+censusUpsert, e.Tenant, day, e.Stream.ID, string(p.Class), p.Location, e.RecordedAt)
	case encounter.TypePatientTransferred:
		p, err := decode[encounter.PatientTransferred](e, encounter.Decode)
		if err != nil {
			return err
		}
		b.Queue(`WITH enc AS (
				UPDATE analytics_encounters n SET location = $4 FROM analytics_encounters o
				WHERE n.tenant_id = $1 AND n.encounter_id = $3 AND n.ended_at IS NULL AND n.location <> $4
					AND o.tenant_id = n.tenant_id AND o.day = n.day AND o.encounter_id = n.encounter_id
				RETURNING o.location AS from_location),
			flows AS (
				SELECT $2::date AS day, from_location AS location, 0 AS admissions, 0 AS discharges, 0 AS transfers_in, 1 AS transfers_out FROM enc
				UNION ALL SELECT $2::date, $4, 0, 0, 1, 0 FROM enc)
			`+censusUpsert, e.Tenant, day, e.Stream.ID, p.Location)
	case encounter.TypeDischarged:
		b.Queue(`WITH enc AS (
				UPDATE analytics_encounters SET ended_at = $4
				WHERE tenant_id = $1 AND encounter_id = $3 AND ended_at IS NULL RETURNING location),
			flows AS (SELECT $2::date AS day, location, 0 AS admissions, 1 AS discharges, 0 AS transfers_in, 0 AS transfers_out FROM enc)
			`+censusUpsert, e.Tenant, day, e.Stream.ID, e.RecordedAt)
	}
	return nil
}
