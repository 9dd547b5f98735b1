package chart

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/projections"
)

// PatientSummary is a patient as search lists it. Fields whose PHI was
// crypto-shredded are null.
type PatientSummary struct {
	PatientID  uuid.UUID  `json:"patient_id"`
	MRN        *string    `json:"mrn"`
	FamilyName *string    `json:"family_name"`
	GivenNames []string   `json:"given_names"`
	BirthDate  *string    `json:"birth_date"` // YYYY-MM-DD
	Sex        *string    `json:"sex"`
	Deceased   bool       `json:"deceased"`
	DeceasedAt *time.Time `json:"deceased_at"`
}

// Chart is a patient's chart: demographics, what is active, and the latest
// vital signs.
type Chart struct {
	PatientSummary
	Phone *string `json:"phone"`
	Email *string `json:"email"`
	// Version is the patient stream version the chart reflects.
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
	// Allergies and Conditions are the active ones.
	Allergies  []Allergy   `json:"allergies"`
	Conditions []Condition `json:"conditions"`
	// Medications are the active orders (from the orders read model).
	Medications []Medication `json:"medications"`
	// Vitals holds the latest observation per vital sign code.
	Vitals []Vital `json:"vitals"`
	// Encounters are the in-progress ones (from the census read model).
	Encounters []Encounter `json:"encounters"`
}

// Allergy is an active allergy.
type Allergy struct {
	AllergyID        uuid.UUID `json:"allergy_id"`
	SubstanceCode    string    `json:"substance_code"`
	SubstanceDisplay *string   `json:"substance_display"`
	SubstanceSystem  string    `json:"substance_system"`
	Criticality      string    `json:"criticality"`
	Reaction         *string   `json:"reaction"`
	RecordedAt       time.Time `json:"recorded_at"`
}

// Condition is an active condition.
type Condition struct {
	ConditionID uuid.UUID `json:"condition_id"`
	Code        string    `json:"code"`
	System      string    `json:"system"`
	Display     *string   `json:"display"`
	Onset       *string   `json:"onset"` // YYYY-MM-DD
	RecordedAt  time.Time `json:"recorded_at"`
}

// Medication is an active medication order.
type Medication struct {
	OrderID      uuid.UUID `json:"order_id"`
	Code         string    `json:"code"`
	Display      *string   `json:"display"`
	System       string    `json:"system"`
	Dose         string    `json:"dose"`
	Route        string    `json:"route"`
	Frequency    string    `json:"frequency"`
	Prescriber   string    `json:"prescriber"`
	PrescribedAt time.Time `json:"prescribed_at"`
}

// Vital is the latest observation of one vital sign.
type Vital struct {
	Code          string    `json:"code"`
	System        string    `json:"system"`
	ObservationID uuid.UUID `json:"observation_id"`
	Value         *float64  `json:"value"`
	Unit          *string   `json:"unit"`
	ValueCode     *string   `json:"value_code"`
	EffectiveAt   time.Time `json:"effective_at"`
}

// Encounter is an open encounter.
type Encounter struct {
	EncounterID uuid.UUID `json:"encounter_id"`
	Class       string    `json:"class"`
	Location    string    `json:"location"`
	StartedAt   time.Time `json:"started_at"`
}

const summaryColumns = `patient_id, mrn, family_name, given_names, to_char(birth_date, 'YYYY-MM-DD') AS birth_date,
	sex, deceased, deceased_at`

// PatientChart returns the chart of patient id. Errors: ENOTFOUND for a
// patient the tenant's chart does not know (another tenant's included).
func PatientChart(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, id uuid.UUID) (Chart, error) {
	var c Chart
	b := &pgx.Batch{}
	b.Queue(`SELECT `+summaryColumns+`, phone, email, version, updated_at
			FROM patient_charts WHERE tenant_id = $1 AND patient_id = $2`, tenant, id)
	b.Queue(`SELECT allergy_id, substance_code, substance_display, substance_system, criticality, reaction,
			recorded_at FROM chart_allergies
			WHERE tenant_id = $1 AND patient_id = $2 AND status = 'active' ORDER BY recorded_at, allergy_id`, tenant, id)
	b.Queue(`SELECT condition_id, code, system, display, to_char(onset, 'YYYY-MM-DD') AS onset, recorded_at
			FROM chart_conditions
			WHERE tenant_id = $1 AND patient_id = $2 AND status = 'active' ORDER BY recorded_at, condition_id`, tenant, id)
	b.Queue(`SELECT order_id, code, display, system, dose, route, frequency, prescriber, prescribed_at
			FROM medication_orders
			WHERE tenant_id = $1 AND patient_id = $2 AND status = 'active' ORDER BY prescribed_at, order_id`, tenant, id)
	b.Queue(`SELECT code, system, observation_id, value::float8 AS value, unit, value_code, effective_at
			FROM chart_vitals WHERE tenant_id = $1 AND patient_id = $2 ORDER BY code`, tenant, id)
	b.Queue(`SELECT encounter_id, class, location, started_at FROM encounters
			WHERE tenant_id = $1 AND patient_id = $2 AND status = 'in-progress' ORDER BY started_at, encounter_id`, tenant, id)
	err := postgres.InReadModelBatch(ctx, pool, tenant, postgres.LiveReadModels, b, func(br pgx.BatchResults) error {
		var err error
		if c, err = collectOne[Chart](br); err != nil {
			return err
		}
		if c.Allergies, err = collect[Allergy](br); err != nil {
			return err
		}
		if c.Conditions, err = collect[Condition](br); err != nil {
			return err
		}
		if c.Medications, err = collect[Medication](br); err != nil {
			return err
		}
		if c.Vitals, err = collect[Vital](br); err != nil {
			return err
		}
		if c.Encounters, err = collect[Encounter](br); err != nil {
			return err
		}
		return nil
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Chart{}, chartstream.Errorf(chartstream.ENOTFOUND, "patient not found")
	}
	if err != nil {
		return Chart{}, fmt.Errorf("chart: patient chart: %w", err)
	}
	return c, nil
}

// collectOne reads the next result of a batch as exactly one T; no row is
// pgx.ErrNoRows. Fields missing from the result are left zero.
func collectOne[T any](br pgx.BatchResults) (T, error) {
	rows, _ := br.Query()
	return pgx.CollectExactlyOneRow(rows, pgx.RowToStructByNameLax[T])
}

// collect reads the next result of a batch as a non-nil slice of T.
func collect[T any](br pgx.BatchResults) ([]T, error) {
	rows, _ := br.Query()
	items, err := pgx.CollectRows(rows, pgx.RowToStructByName[T])
	if items == nil {
		items = []T{}
	}
	return items, err
}

// SearchParams selects patients; the criteria given must all match, and
// none lists every patient.
type SearchParams struct {
	// MRN matches exactly.
	MRN string
	// Name matches ignoring case and accents: a prefix of the given or
	// family name ("ada"), or a similar word ("lovlace" finds Lovelace).
	Name string
	// BirthDate is YYYY-MM-DD.
	BirthDate string
	// Cursor continues after a previous page (Page.Next).
	Cursor string
	// Limit is the page size (see projections.Limit).
	Limit int
}

// wordSimilarity is the pg_trgm word similarity above which a name matches
// fuzzily. The default, 0.6, misses one dropped letter in a short word.
const wordSimilarity = "0.5"

// SearchPatients returns a page of the tenant's patients matching p, in the
// order of family name, given names and id. Errors: EINVALID for a
// malformed birth date, limit or cursor.
func SearchPatients(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, p SearchParams) (projections.Page[PatientSummary], error) {
	var f projections.Filter
	if p.MRN != "" {
		f.Where("mrn = " + f.Arg(p.MRN))
	}
	if p.BirthDate != "" {
		if _, err := time.Parse(time.DateOnly, p.BirthDate); err != nil {
			return projections.Page[PatientSummary]{}, chartstream.Invalid(chartstream.FieldError{Field: "birth_date", Reason: "must be YYYY-MM-DD"})
		}
		f.Where("birth_date = " + f.Arg(p.BirthDate) + "::date")
	}
	if name := strings.TrimSpace(p.Name); name != "" {
		prefix, fuzzy := f.Arg(likeEscape(name)), f.Arg(name)
		f.Where(fmt.Sprintf(`(search_name LIKE chartstream_fold(%[1]s) || '%%'
			OR search_name LIKE '%% ' || chartstream_fold(%[1]s) || '%%'
			OR chartstream_fold(%[2]s) <%% search_name)`, prefix, fuzzy))
	}
	var page projections.Page[PatientSummary]
	err := postgres.InReadModelTx(ctx, pool, tenant, postgres.LiveReadModels, func(tx pgx.Tx) (err error) {
		if _, err := tx.Exec(ctx, `SELECT set_config('pg_trgm.word_similarity_threshold', $1, true)`, wordSimilarity); err != nil {
			return err
		}
		page, err = projections.ListTx(ctx, tx, tenant, patientList, f, p.Cursor, p.Limit,
			func(s PatientSummary) uuid.UUID { return s.PatientID })
		return err
	})
	if err != nil {
		return page, fmt.Errorf("chart: search patients: %w", err)
	}
	return page, nil
}

var patientList = projections.Keyset{
	Table:   "patient_charts",
	Columns: summaryColumns,
	SortKey: "sort_name",
	ID:      "patient_id",
}

// likeEscape escapes LIKE's wildcards and escape character, so that a name
// is matched literally.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// PatientAllergy is an active allergy with its patient.
type PatientAllergy struct {
	PatientID uuid.UUID `json:"patient_id"`
	Allergy
}

// PatientCondition is an active condition with its patient.
type PatientCondition struct {
	PatientID uuid.UUID `json:"patient_id"`
	Condition
}

// AllergyByID returns one active allergy. Errors: ENOTFOUND for an id the
// tenant's chart does not hold as active.
func AllergyByID(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, id uuid.UUID) (PatientAllergy, error) {
	return projections.One[PatientAllergy](ctx, pool, tenant, `SELECT patient_id, allergy_id, substance_code, substance_display,
		substance_system, criticality, reaction, recorded_at FROM chart_allergies
		WHERE tenant_id = $1 AND allergy_id = $2 AND status = 'active'`, id, "allergy")
}

// ConditionByID returns one active condition. Errors: ENOTFOUND for an id
// the tenant's chart does not hold as active.
func ConditionByID(ctx context.Context, pool *pgxpool.Pool, tenant chartstream.TenantID, id uuid.UUID) (PatientCondition, error) {
	return projections.One[PatientCondition](ctx, pool, tenant, `SELECT patient_id, condition_id, code, system, display,
		to_char(onset, 'YYYY-MM-DD') AS onset, recorded_at FROM chart_conditions
		WHERE tenant_id = $1 AND condition_id = $2 AND status = 'active'`, id, "condition")
}
