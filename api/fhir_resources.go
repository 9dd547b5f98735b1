package api

import (
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream/projections/census"
	"github.com/chartstream/chartstream/projections/chart"
	"github.com/chartstream/chartstream/projections/observations"
	"github.com/chartstream/chartstream/projections/orders"
)

// Code systems and identifier systems of the mapping.
const (
	// mrnSystem names chartstream's medical record numbers, which are unique
	// within a tenant; the FHIR base is a tenant's, so no tenant is in it.
	mrnSystem = "urn:chartstream:mrn"
	// subjectSystem names the authenticated subjects (token "sub") that
	// prescribe: an identifier, not a Practitioner resource.
	subjectSystem  = "urn:chartstream:subject"
	ucumSystem     = "http://unitsofmeasure.org"
	loincSystem    = "http://loinc.org"
	v2IDTypes      = "http://terminology.hl7.org/CodeSystem/v2-0203"
	v3ActCode      = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	v3ObsValue     = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	obsCategory    = "http://terminology.hl7.org/CodeSystem/observation-category"
	allergyClin    = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
	allergyVerif   = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
	conditionClin  = "http://terminology.hl7.org/CodeSystem/condition-clinical"
	fhirTimeLayout = time.RFC3339Nano
)

func fhirTime(t time.Time) string { return t.UTC().Format(fhirTimeLayout) }

func patientRef(id uuid.UUID) fhirReference {
	return fhirReference{Reference: "Patient/" + id.String()}
}

func concept(system, code string, display *string) fhirConcept {
	c := fhirCoding{System: system, Code: code}
	if display != nil {
		c.Display = *display
	}
	return fhirConcept{Coding: []fhirCoding{c}}
}

// fhirPatientOf maps a patient. A search result has no contact details, so
// it carries no telecom and is tagged SUBSETTED, as FHIR asks of a resource
// served incomplete; the read of Patient/{id} is complete. Erased (null)
// PHI is simply absent.
func fhirPatientOf(s chart.PatientSummary, full *chart.Chart) fhirPatient {
	p := fhirPatient{ResourceType: "Patient", ID: s.PatientID.String()}
	if s.MRN != nil {
		p.Identifier = []fhirIdentifier{{Use: "usual", System: mrnSystem, Value: *s.MRN,
			Type: &fhirConcept{Coding: []fhirCoding{{System: v2IDTypes, Code: "MR", Display: "Medical record number"}}}}}
	}
	if s.FamilyName != nil || len(s.GivenNames) > 0 {
		n := fhirHumanName{Use: "official", Given: s.GivenNames}
		if s.FamilyName != nil {
			n.Family = *s.FamilyName
		}
		p.Name = []fhirHumanName{n}
	}
	if s.Sex != nil {
		p.Gender = *s.Sex // the administrative sexes are FHIR's codes
	}
	if s.BirthDate != nil {
		p.BirthDate = *s.BirthDate
	}
	switch {
	case s.DeceasedAt != nil:
		p.DeceasedDateTime = fhirTime(*s.DeceasedAt)
	case s.Deceased: // the time of death was erased; the death was not
		p.DeceasedBoolean = new(true)
	}
	if full == nil {
		p.Meta = &fhirMeta{Tag: []fhirCoding{{System: v3ObsValue, Code: "SUBSETTED", Display: "subsetted"}}}
		return p
	}
	p.Meta = &fhirMeta{VersionID: strconv.FormatInt(full.Version, 10), LastUpdated: fhirTime(full.UpdatedAt)}
	if full.Phone != nil {
		p.Telecom = append(p.Telecom, fhirTelecom{System: "phone", Value: *full.Phone})
	}
	if full.Email != nil {
		p.Telecom = append(p.Telecom, fhirTelecom{System: "email", Value: *full.Email})
	}
	return p
}

// fhirObservationOf maps an observation. Its coded value's system is not
// recorded, so the value coding has a code and no system.
func fhirObservationOf(o observations.Observation) fhirObservation {
	f := fhirObservation{ResourceType: "Observation", ID: o.ObservationID.String(), Status: "final",
		Code: concept(o.System, o.Code, nil), Subject: patientRef(o.PatientID),
		EffectiveDateTime: fhirTime(o.EffectiveAt), Issued: fhirTime(o.RecordedAt)}
	if o.System == loincSystem && chart.IsVitalSign(o.Code) {
		f.Category = []fhirConcept{{Coding: []fhirCoding{{System: obsCategory, Code: "vital-signs", Display: "Vital Signs"}}}}
	}
	if o.EncounterID != nil {
		f.Encounter = &fhirReference{Reference: "Encounter/" + o.EncounterID.String()}
	}
	switch {
	case o.Value != nil:
		q := &fhirQuantity{Value: *o.Value}
		if o.Unit != nil {
			q.Unit, q.System, q.Code = *o.Unit, ucumSystem, *o.Unit
		}
		f.ValueQuantity = q
	case o.ValueCode != nil:
		f.ValueCodeableConcept = &fhirConcept{Coding: []fhirCoding{{Code: *o.ValueCode}}}
	}
	return f
}

// encounterClasses maps chartstream's encounter classes to v3 ActCode.
var encounterClasses = map[string]fhirCoding{
	"inpatient":  {System: v3ActCode, Code: "IMP", Display: "inpatient encounter"},
	"outpatient": {System: v3ActCode, Code: "AMB", Display: "ambulatory"},
	"emergency":  {System: v3ActCode, Code: "EMER", Display: "emergency"},
}

// fhirEncounterOf maps an encounter. The census knows only the current
// location, so the location history has one entry.
func fhirEncounterOf(e census.Encounter) fhirEncounter {
	f := fhirEncounter{ResourceType: "Encounter", ID: e.EncounterID.String(), Status: e.Status,
		Class: encounterClasses[e.Class], Subject: patientRef(e.PatientID), Period: fhirPeriod{Start: fhirTime(e.StartedAt)}}
	site := fhirEncounterSite{Location: fhirReference{Display: e.Location}, Status: "active"}
	if e.EndedAt != nil {
		f.Period.End = fhirTime(*e.EndedAt)
		site.Status = "completed"
	}
	if e.Location != "" {
		f.Location = []fhirEncounterSite{site}
	}
	return f
}

// fhirMedicationRequestOf maps an order. The prescriber is the subject of
// the token that prescribed, given as an identifier: chartstream has no
// Practitioner resources and invents no names.
func fhirMedicationRequestOf(o orders.MedicationOrder) fhirMedicationRequest {
	f := fhirMedicationRequest{ResourceType: "MedicationRequest", ID: o.OrderID.String(), Status: o.Status, Intent: "order",
		MedicationCodeableConcept: concept(o.System, o.Code, o.Display), Subject: patientRef(o.PatientID),
		AuthoredOn: fhirTime(o.PrescribedAt),
		DosageInstruction: []fhirDosage{{Text: strings.Join([]string{o.Dose, o.Route, o.Frequency}, " "),
			Route: &fhirConcept{Text: o.Route}}}}
	if o.Display != nil {
		f.MedicationCodeableConcept.Text = *o.Display
	}
	if o.Prescriber != "" {
		f.Requester = &fhirReference{Type: "Practitioner", Identifier: &fhirIdentifier{System: subjectSystem, Value: o.Prescriber}}
	}
	return f
}

// fhirAllergyOf maps an active allergy: the chart keeps only those, and a
// recorded allergy is a confirmed one.
func fhirAllergyOf(patient uuid.UUID, a chart.Allergy) fhirAllergy {
	f := fhirAllergy{ResourceType: "AllergyIntolerance", ID: a.AllergyID.String(),
		ClinicalStatus:     fhirConcept{Coding: []fhirCoding{{System: allergyClin, Code: "active", Display: "Active"}}},
		VerificationStatus: fhirConcept{Coding: []fhirCoding{{System: allergyVerif, Code: "confirmed", Display: "Confirmed"}}},
		Criticality:        a.Criticality, // low, high, unable-to-assess: FHIR's codes
		Code:               concept(a.SubstanceSystem, a.SubstanceCode, a.SubstanceDisplay),
		Patient:            patientRef(patient), RecordedDate: fhirTime(a.RecordedAt)}
	if a.Reaction != nil {
		f.Reaction = []fhirReaction{{Manifestation: []fhirConcept{{Text: *a.Reaction}}}}
	}
	return f
}

// fhirConditionOf maps an active condition (the chart keeps only those).
func fhirConditionOf(patient uuid.UUID, c chart.Condition) fhirCondition {
	f := fhirCondition{ResourceType: "Condition", ID: c.ConditionID.String(),
		ClinicalStatus: fhirConcept{Coding: []fhirCoding{{System: conditionClin, Code: "active", Display: "Active"}}},
		Code:           concept(c.System, c.Code, c.Display), Subject: patientRef(patient), RecordedDate: fhirTime(c.RecordedAt)}
	if c.Onset != nil {
		f.OnsetDateTime = *c.Onset // a date is a FHIR dateTime
	}
	return f
}
