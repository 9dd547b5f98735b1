package chart_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/encounter"
	"github.com/chartstream/chartstream/commands/medicationorder"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/projections/census"
	"github.com/chartstream/chartstream/projections/chart"
	pt "github.com/chartstream/chartstream/projections/internal/projectiontest"
	"github.com/chartstream/chartstream/projections/orders"
)

var t0 = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

func float(v float64) *float64 { return &v }

func ada(mrn string) patient.PatientRegistered {
	return patient.PatientRegistered{
		MRN: mrn, Name: patient.HumanName{Family: "Lovelace", Given: []string{"Ada"}}, BirthDate: "1815-12-10",
		Sex: patient.SexFemale, Contact: patient.Contact{Phone: "+44 20 7946 0000"},
	}
}

func TestPatientChart(t *testing.T) {
	t.Parallel()
	env := pt.MustEnv(t)
	a, b := testkit.MustTenant(t), testkit.MustTenant(t)
	id := uuid.New()
	peanut, penicillin := uuid.New(), uuid.New()
	asthma, flu := uuid.New(), uuid.New()
	later, earlier, lab := uuid.New(), uuid.New(), uuid.New()
	phone, email := "+44 20 7946 0001", "ada@example.org"
	events := env.Append(t, a, patient.Stream(id),
		ada("MRN-1"),
		patient.AllergyRecorded{AllergyID: peanut, Substance: patient.Coding{Code: "1191", Display: "Peanut", System: patient.RxNorm},
			Criticality: patient.CriticalityHigh, Reaction: "anaphylaxis"},
		patient.AllergyRecorded{AllergyID: penicillin, Substance: patient.Coding{Code: "7980", System: patient.RxNorm},
			Criticality: patient.CriticalityLow},
		patient.AllergyRefuted{AllergyID: penicillin},
		patient.ConditionDiagnosed{ConditionID: asthma, Code: "J45", System: "http://hl7.org/fhir/sid/icd-10", Display: "Asthma", Onset: "2020-01-02"},
		patient.ConditionDiagnosed{ConditionID: flu, Code: "J10", System: "http://hl7.org/fhir/sid/icd-10"},
		patient.ConditionResolved{ConditionID: flu},
		// The later heart rate arrives first; the earlier must not replace it.
		patient.ObservationRecorded{ObservationID: later, Code: "8867-4", System: patient.LOINC, Value: float(72), Unit: "/min", EffectiveAt: t0.Add(time.Hour)},
		patient.ObservationRecorded{ObservationID: earlier, Code: "8867-4", System: patient.LOINC, Value: float(90), Unit: "/min", EffectiveAt: t0},
		patient.ObservationRecorded{ObservationID: lab, Code: "2345-7", System: patient.LOINC, Value: float(5.4), Unit: "mmol/L", EffectiveAt: t0},
		patient.DemographicsUpdated{Contact: &patient.Contact{Phone: phone, Email: email}},
	)
	env.ApplyAndCheck(t, chart.Projector{}, a, b, events...)

	// Medications and open encounters come from the other read models.
	active, stopped, enc := uuid.New(), uuid.New(), uuid.New()
	amox := patient.Coding{Code: "723", Display: "Amoxicillin", System: patient.RxNorm}
	env.Apply(t, orders.Projector{}, pt.Public, env.Append(t, a, chartstream.StreamRef{Type: medicationorder.StreamType, ID: active},
		medicationorder.MedicationPrescribed{PatientID: id, Medication: amox, Dose: "500 mg", Route: "oral", Frequency: "TID", Prescriber: "dr-1"})...)
	env.Apply(t, orders.Projector{}, pt.Public, env.Append(t, a, chartstream.StreamRef{Type: medicationorder.StreamType, ID: stopped},
		medicationorder.MedicationPrescribed{PatientID: id, Medication: amox, Dose: "250 mg", Route: "oral", Frequency: "BID", Prescriber: "dr-1"},
		medicationorder.MedicationDiscontinued{PatientID: id})...)
	env.Apply(t, census.Projector{}, pt.Public, env.Append(t, a, chartstream.StreamRef{Type: encounter.StreamType, ID: enc},
		encounter.EncounterStarted{PatientID: id, Class: encounter.ClassInpatient, Location: "ward-3"})...)

	c, err := chart.PatientChart(env.Ctx, env.Pool, a, id)
	if err != nil {
		t.Fatal(err)
	}
	last := events[len(events)-1]
	if c.PatientID != id || deref(c.MRN) != "MRN-1" || deref(c.FamilyName) != "Lovelace" || !slices.Equal(c.GivenNames, []string{"Ada"}) ||
		deref(c.BirthDate) != "1815-12-10" || deref(c.Sex) != "female" || c.Deceased || c.DeceasedAt != nil {
		t.Errorf("demographics: %+v", c.PatientSummary)
	}
	if deref(c.Phone) != phone || deref(c.Email) != email {
		t.Errorf("contact after the update: phone %v email %v", c.Phone, c.Email)
	}
	if c.Version != last.Version || !c.UpdatedAt.Equal(last.RecordedAt) {
		t.Errorf("version %d at %v, want %d at %v", c.Version, c.UpdatedAt, last.Version, last.RecordedAt)
	}
	if len(c.Allergies) != 1 || c.Allergies[0].AllergyID != peanut || deref(c.Allergies[0].Reaction) != "anaphylaxis" ||
		c.Allergies[0].Criticality != "high" || deref(c.Allergies[0].SubstanceDisplay) != "Peanut" {
		t.Errorf("allergies: %+v, want only the peanut allergy", c.Allergies)
	}
	if len(c.Conditions) != 1 || c.Conditions[0].ConditionID != asthma || deref(c.Conditions[0].Onset) != "2020-01-02" {
		t.Errorf("conditions: %+v, want only asthma", c.Conditions)
	}
	if len(c.Vitals) != 1 || c.Vitals[0].ObservationID != later || c.Vitals[0].Value == nil || *c.Vitals[0].Value != 72 {
		t.Errorf("vitals: %+v, want the heart rate effective last and no lab", c.Vitals)
	}
	if len(c.Medications) != 1 || c.Medications[0].OrderID != active || c.Medications[0].Dose != "500 mg" {
		t.Errorf("medications: %+v, want only the active order", c.Medications)
	}
	if len(c.Encounters) != 1 || c.Encounters[0].EncounterID != enc || c.Encounters[0].Location != "ward-3" {
		t.Errorf("encounters: %+v, want the open one", c.Encounters)
	}

	// Another tenant cannot see the chart, and an unknown id is not found.
	for _, q := range []struct {
		tenant chartstream.TenantID
		id     uuid.UUID
	}{{b, id}, {a, uuid.New()}} {
		if _, err := chart.PatientChart(env.Ctx, env.Pool, q.tenant, q.id); chartstream.ErrorCode(err) != chartstream.ENOTFOUND {
			t.Errorf("chart of %s in tenant %s: got %v, want ENOTFOUND", q.id, q.tenant, err)
		}
	}
}

func TestDeathAndShreddedPHI(t *testing.T) {
	t.Parallel()
	env := pt.MustEnv(t)
	a := testkit.MustTenant(t)
	id := uuid.New()
	env.Append(t, a, patient.Stream(id), ada("MRN-2"), patient.PatientDeceased{DeceasedAt: t0},
		patient.AllergyRecorded{AllergyID: uuid.New(), Substance: patient.Coding{Code: "1191", System: patient.RxNorm},
			Criticality: patient.CriticalityHigh, Reaction: "hives"})
	if err := env.Store.ShredSubject(env.Ctx, a, id); err != nil {
		t.Fatal(err)
	}
	events := env.Read(t, a, patient.Stream(id), 1)
	if len(events[0].Erased) == 0 {
		t.Fatal("the registration's PHI is not erased after shredding")
	}
	env.Apply(t, chart.Projector{}, pt.Public, events...)

	c, err := chart.PatientChart(env.Ctx, env.Pool, a, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.MRN != nil || c.FamilyName != nil || c.GivenNames != nil || c.BirthDate != nil || c.Phone != nil || c.DeceasedAt != nil {
		t.Errorf("shredded PHI is not null: %+v", c)
	}
	if !c.Deceased || deref(c.Sex) != "female" {
		t.Errorf("deceased %v sex %v: what is not PHI must stay", c.Deceased, c.Sex)
	}
	if len(c.Allergies) != 1 || c.Allergies[0].Reaction != nil {
		t.Errorf("allergies %+v: want the allergy with a null reaction", c.Allergies)
	}
}

func TestSearchPatients(t *testing.T) {
	t.Parallel()
	env := pt.MustEnv(t)
	a, b := testkit.MustTenant(t), testkit.MustTenant(t)
	adaID, joseID, graceID := uuid.New(), uuid.New(), uuid.New()
	register := func(id uuid.UUID, e patient.PatientRegistered) {
		env.Apply(t, chart.Projector{}, pt.Public, env.Append(t, a, patient.Stream(id), e)...)
	}
	register(adaID, ada("MRN-ADA"))
	register(joseID, patient.PatientRegistered{MRN: "MRN-JOSE", Name: patient.HumanName{Family: "Núñez", Given: []string{"José", "María"}},
		BirthDate: "1990-05-06", Sex: patient.SexMale})
	register(graceID, patient.PatientRegistered{MRN: "MRN-GRACE", Name: patient.HumanName{Family: "Hopper", Given: []string{"Grace"}},
		BirthDate: "1906-12-09", Sex: patient.SexFemale})
	// Grace marries into the search results for "lovelace".
	env.Apply(t, chart.Projector{}, pt.Public, env.Append(t, a, patient.Stream(graceID),
		patient.DemographicsUpdated{Name: &patient.HumanName{Family: "Lovelace", Given: []string{"Grace"}}})...)

	for _, tc := range []struct {
		name string
		p    chart.SearchParams
		want []uuid.UUID // in order
	}{
		{"mrn", chart.SearchParams{MRN: "MRN-JOSE"}, []uuid.UUID{joseID}},
		{"mrn is exact", chart.SearchParams{MRN: "MRN"}, nil},
		{"given name prefix", chart.SearchParams{Name: "ada"}, []uuid.UUID{adaID}},
		{"family name prefix", chart.SearchParams{Name: "Lovel"}, []uuid.UUID{adaID, graceID}},
		{"fuzzy", chart.SearchParams{Name: "lovlace"}, []uuid.UUID{adaID, graceID}},
		{"accents and case", chart.SearchParams{Name: "Ádá"}, []uuid.UUID{adaID}},
		{"accents in the data", chart.SearchParams{Name: "nunez"}, []uuid.UUID{joseID}},
		{"second given name", chart.SearchParams{Name: "maria"}, []uuid.UUID{joseID}},
		{"old name is gone", chart.SearchParams{Name: "hopper"}, nil},
		{"wildcards are literal", chart.SearchParams{Name: "%"}, nil},
		{"birth date", chart.SearchParams{BirthDate: "1815-12-10"}, []uuid.UUID{adaID}},
		{"name and birth date", chart.SearchParams{Name: "lovelace", BirthDate: "1906-12-09"}, []uuid.UUID{graceID}},
		{"no match", chart.SearchParams{Name: "zzyzx"}, nil},
		{"everyone", chart.SearchParams{}, []uuid.UUID{adaID, graceID, joseID}},
	} {
		page, err := chart.SearchPatients(env.Ctx, env.Pool, a, tc.p)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := patientIDs(page.Items); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
		// Tenant B sees none of tenant A's patients.
		page, err = chart.SearchPatients(env.Ctx, env.Pool, b, tc.p)
		if err != nil || len(page.Items) != 0 {
			t.Errorf("%s in tenant B: got %d patients, %v; want none", tc.name, len(page.Items), err)
		}
	}
	for _, p := range []chart.SearchParams{{BirthDate: "10/12/1815"}, {Limit: -1}, {Cursor: "not a cursor"}} {
		if _, err := chart.SearchPatients(env.Ctx, env.Pool, a, p); chartstream.ErrorCode(err) != chartstream.EINVALID {
			t.Errorf("search %+v: got %v, want EINVALID", p, err)
		}
	}
}

func TestSearchPagination(t *testing.T) {
	t.Parallel()
	env := pt.MustEnv(t)
	a, b := testkit.MustTenant(t), testkit.MustTenant(t)
	want := map[uuid.UUID]bool{}
	for i := range 25 {
		id := uuid.New()
		want[id] = true
		e := ada(fmt.Sprintf("MRN-%02d", i))
		e.Name.Family = fmt.Sprintf("Lovelace-%d", i%3) // ties on the sort key are broken by id
		env.Apply(t, chart.Projector{}, pt.Public, env.Append(t, a, patient.Stream(id), e)...)
	}
	seen := map[uuid.UUID]int{}
	var sizes []int
	cursor := ""
	for {
		page, err := chart.SearchPatients(env.Ctx, env.Pool, a, chart.SearchParams{Name: "ada", Cursor: cursor, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(page.Items))
		for _, p := range page.Items {
			seen[p.PatientID]++
		}
		if page.Next == "" {
			break
		}
		if len(sizes) == 1 {
			// Another tenant cannot continue tenant A's listing.
			if _, err := chart.SearchPatients(env.Ctx, env.Pool, b, chart.SearchParams{Cursor: page.Next}); chartstream.ErrorCode(err) != chartstream.EINVALID {
				t.Errorf("tenant B with tenant A's cursor: got %v, want EINVALID", err)
			}
		}
		cursor = page.Next
	}
	if !slices.Equal(sizes, []int{10, 10, 5}) {
		t.Errorf("page sizes %v, want [10 10 5]", sizes)
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("patient %s listed %d times, want once", id, seen[id])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("listed %d patients, want %d", len(seen), len(want))
	}
}

func patientIDs(ps []chart.PatientSummary) []uuid.UUID {
	var ids []uuid.UUID
	for _, p := range ps {
		ids = append(ids, p.PatientID)
	}
	return ids
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
