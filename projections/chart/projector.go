// Package chart is the patient chart read model: demographics, allergies,
// conditions and the latest vital signs, projected from patient streams, and
// the patient search. The chart query also reads the orders and census read
// models for active medications and open encounters.
package chart

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/patient"
)

// Projector applies patient events to the chart tables. Apply runs inside
// the caller's tenant transaction, ignores event types it does not project,
// and is idempotent.
type Projector struct{}

// Name returns the projection's name in projection_checkpoints.
func (Projector) Name() string { return "chart" }

// Tables returns the projection's tables, for a rebuild.
func (Projector) Tables() []string {
	return []string{"patient_charts", "chart_allergies", "chart_conditions", "chart_vitals"}
}

// Apply projects e. It returns an error, wrapped, when a patient event
// cannot be decoded or written; the caller's transaction must then roll back.
func (Projector) Apply(ctx context.Context, tx pgx.Tx, e chartstream.Event) error {
	if e.Stream.Type != patient.StreamType {
		return nil
	}
	switch e.Type {
	case patient.TypeRegistered, patient.TypeDemographicsUpdated, patient.TypeAllergyRecorded,
		patient.TypeAllergyRefuted, patient.TypeConditionDiagnosed, patient.TypeConditionResolved,
		patient.TypeObservationRecorded, patient.TypeDeceased, patient.TypeErased:
	default:
		return nil
	}
	payload, err := patient.Decode(e)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if err := apply(ctx, tx, e, payload); err != nil {
		return fmt.Errorf("chart: apply %s event at version %d of patient %s: %w", e.Type, e.Version, e.Stream.ID, err)
	}
	return nil
}

func apply(ctx context.Context, tx pgx.Tx, e chartstream.Event, payload patient.Event) error {
	switch p := payload.(type) {
	case patient.PatientRegistered:
		return register(ctx, tx, e, p)
	case patient.DemographicsUpdated:
		return updateDemographics(ctx, tx, e, p)
	case patient.AllergyRecorded:
		return exec(ctx, tx, e, `
			INSERT INTO chart_allergies (tenant_id, allergy_id, patient_id, substance_code, substance_display,
				substance_system, criticality, reaction, status, recorded_at, version)
			VALUES ($1, $4, $2, $5, $6, $7, $8, $9, 'active', $10, $3)
			ON CONFLICT (tenant_id, allergy_id) DO NOTHING`,
			p.AllergyID, p.Substance.Code, text(p.Substance.Display), p.Substance.System, p.Criticality,
			text(p.Reaction), e.RecordedAt)
	case patient.AllergyRefuted:
		return exec(ctx, tx, e, `
			UPDATE chart_allergies SET status = 'refuted', version = $3
			WHERE tenant_id = $1 AND patient_id = $2 AND allergy_id = $4 AND version < $3`, p.AllergyID)
	case patient.ConditionDiagnosed:
		return exec(ctx, tx, e, `
			INSERT INTO chart_conditions (tenant_id, condition_id, patient_id, code, system, display, onset,
				status, recorded_at, version)
			VALUES ($1, $4, $2, $5, $6, $7, $8::date, 'active', $9, $3)
			ON CONFLICT (tenant_id, condition_id) DO NOTHING`,
			p.ConditionID, p.Code, p.System, text(p.Display), text(p.Onset), e.RecordedAt)
	case patient.ConditionResolved:
		return exec(ctx, tx, e, `
			UPDATE chart_conditions SET status = 'resolved', resolved_at = $5, version = $3
			WHERE tenant_id = $1 AND patient_id = $2 AND condition_id = $4 AND version < $3`,
			p.ConditionID, e.RecordedAt)
	case patient.ObservationRecorded:
		if p.System != patient.LOINC || !IsVitalSign(p.Code) {
			return touch(ctx, tx, e)
		}
		// The latest effective_at wins, ties to the larger id, so the
		// result does not depend on the order observations arrive in.
		_, err := tx.Exec(ctx, `
			INSERT INTO chart_vitals AS v (tenant_id, patient_id, code, system, observation_id, value, unit,
				value_code, effective_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (tenant_id, patient_id, code) DO UPDATE
			SET system = excluded.system, observation_id = excluded.observation_id, value = excluded.value,
				unit = excluded.unit, value_code = excluded.value_code, effective_at = excluded.effective_at
			WHERE (v.effective_at, v.observation_id) < (excluded.effective_at, excluded.observation_id)`,
			e.Tenant, e.Stream.ID, p.Code, p.System, p.ObservationID, p.Value, text(p.Unit), text(p.ValueCode),
			p.EffectiveAt)
		if err != nil {
			return err
		}
		return touch(ctx, tx, e)
	case patient.PatientErased:
		// The PHI leaves the read model with the key: every field an event
		// marks as PHI (names, birth date, contact, MRN, time of death,
		// allergy reactions). The chart stays, so the patient's clinical
		// history keeps its subject.
		if _, err := tx.Exec(ctx, `
			UPDATE patient_charts SET mrn = NULL, family_name = NULL, given_names = NULL, birth_date = NULL,
				phone = NULL, email = NULL, deceased_at = NULL, search_name = '', sort_name = '', version = $3, updated_at = $4
			WHERE tenant_id = $1 AND patient_id = $2 AND version < $3`,
			e.Tenant, e.Stream.ID, e.Version, e.RecordedAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE chart_allergies SET reaction = NULL WHERE tenant_id = $1 AND patient_id = $2`,
			e.Tenant, e.Stream.ID)
		return err
	case patient.PatientDeceased:
		// deceased_at is PHI: when shredded, deceased still says so.
		var at any
		if !slices.Contains(e.Erased, "deceased_at") && !p.DeceasedAt.IsZero() {
			at = p.DeceasedAt
		}
		_, err := tx.Exec(ctx, `
			UPDATE patient_charts SET deceased = true, deceased_at = $4, version = $3, updated_at = $5
			WHERE tenant_id = $1 AND patient_id = $2 AND version < $3`,
			e.Tenant, e.Stream.ID, e.Version, at, e.RecordedAt)
		return err
	}
	return nil
}

// exec runs a statement about a row of the patient's chart, with $1 the
// tenant, $2 the patient and $3 the event's version followed by args, then
// advances the chart's version.
func exec(ctx context.Context, tx pgx.Tx, e chartstream.Event, sql string, args ...any) error {
	if _, err := tx.Exec(ctx, sql, append([]any{e.Tenant, e.Stream.ID, e.Version}, args...)...); err != nil {
		return err
	}
	return touch(ctx, tx, e)
}

// touch records that the chart reflects the patient stream up to e.
func touch(ctx context.Context, tx pgx.Tx, e chartstream.Event) error {
	_, err := tx.Exec(ctx, `
		UPDATE patient_charts SET version = $3, updated_at = $4
		WHERE tenant_id = $1 AND patient_id = $2 AND version < $3`,
		e.Tenant, e.Stream.ID, e.Version, e.RecordedAt)
	return err
}

// register creates the chart. Erased PHI decodes as zero values, stored as
// NULL.
func register(ctx context.Context, tx pgx.Tx, e chartstream.Event, p patient.PatientRegistered) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO patient_charts AS c (tenant_id, patient_id, mrn, family_name, given_names, birth_date, sex,
			phone, email, search_name, sort_name, version, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6::date, $7, $8, $9,
			chartstream_fold($10), chartstream_fold($11), $12, $13)
		ON CONFLICT (tenant_id, patient_id) DO UPDATE
		SET mrn = excluded.mrn, family_name = excluded.family_name, given_names = excluded.given_names,
			birth_date = excluded.birth_date, sex = excluded.sex, phone = excluded.phone, email = excluded.email,
			search_name = excluded.search_name, sort_name = excluded.sort_name, version = excluded.version,
			updated_at = excluded.updated_at
		WHERE c.version < excluded.version`,
		e.Tenant, e.Stream.ID, text(p.MRN), text(p.Name.Family), names(p.Name.Given), text(p.BirthDate),
		text(string(p.Sex)), text(p.Contact.Phone), text(p.Contact.Email),
		searchName(p.Name), sortName(p.Name), e.Version, e.RecordedAt)
	return err
}

// updateDemographics changes the fields present in the event; absent (or
// erased) ones stay.
func updateDemographics(ctx context.Context, tx pgx.Tx, e chartstream.Event, p patient.DemographicsUpdated) error {
	sets := []string{"version = $3", "updated_at = $4"}
	args := []any{e.Tenant, e.Stream.ID, e.Version, e.RecordedAt}
	// set adds "column = expr", expr a format whose %d is the value's
	// parameter number.
	set := func(column, expr string, value any) {
		args = append(args, value)
		sets = append(sets, column+" = "+fmt.Sprintf(expr, len(args)))
	}
	if n := p.Name; n != nil {
		set("family_name", "$%d", text(n.Family))
		set("given_names", "$%d", names(n.Given))
		set("search_name", "chartstream_fold($%d)", searchName(*n))
		set("sort_name", "chartstream_fold($%d)", sortName(*n))
	}
	if p.BirthDate != nil {
		set("birth_date", "$%d::date", text(*p.BirthDate))
	}
	if p.Sex != nil {
		set("sex", "$%d", text(string(*p.Sex)))
	}
	if c := p.Contact; c != nil {
		set("phone", "$%d", text(c.Phone))
		set("email", "$%d", text(c.Email))
	}
	_, err := tx.Exec(ctx, `UPDATE patient_charts SET `+strings.Join(sets, ", ")+`
		WHERE tenant_id = $1 AND patient_id = $2 AND version < $3`, args...)
	return err
}

// searchName and sortName are the texts chartstream_fold turns into the
// search and sort keys.
func searchName(n patient.HumanName) string {
	return strings.TrimSpace(strings.Join(append(slices.Clone(n.Given), n.Family), " "))
}

func sortName(n patient.HumanName) string {
	return strings.TrimSpace(n.Family + " " + strings.Join(n.Given, " "))
}

// text returns nil (NULL) for an empty or erased string.
func text(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// names returns nil (NULL) for no names.
func names(given []string) []string {
	if len(given) == 0 {
		return nil
	}
	return given
}

// IsVitalSign reports whether a LOINC code is one of the vital signs the
// chart keeps the latest value of (the FHIR vital signs profile).
func IsVitalSign(code string) bool {
	switch code {
	case "85353-1", // vital signs panel
		"9279-1",  // respiratory rate
		"8867-4",  // heart rate
		"2708-6",  // oxygen saturation in arterial blood
		"59408-5", // oxygen saturation by pulse oximetry
		"8310-5",  // body temperature
		"8302-2",  // body height
		"9843-4",  // head circumference
		"29463-7", // body weight
		"39156-5", // body mass index
		"85354-9", // blood pressure panel
		"8480-6",  // systolic blood pressure
		"8462-4",  // diastolic blood pressure
		"8478-0":  // mean blood pressure
		return true
	}
	return false
}
