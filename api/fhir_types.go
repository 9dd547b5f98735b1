package api

// The FHIR R4 JSON the read routes emit: only the elements chartstream has
// data for, every optional one omitted when empty, so that a strict parser
// finds nothing it does not know.
type (
	fhirCoding struct {
		System  string `json:"system,omitempty"`
		Code    string `json:"code,omitempty"`
		Display string `json:"display,omitempty"`
	}
	fhirConcept struct {
		Coding []fhirCoding `json:"coding,omitempty"`
		Text   string       `json:"text,omitempty"`
	}
	fhirIdentifier struct {
		Use    string       `json:"use,omitempty"`
		Type   *fhirConcept `json:"type,omitempty"`
		System string       `json:"system,omitempty"`
		Value  string       `json:"value,omitempty"`
	}
	fhirReference struct {
		Reference  string          `json:"reference,omitempty"`
		Type       string          `json:"type,omitempty"`
		Identifier *fhirIdentifier `json:"identifier,omitempty"`
		Display    string          `json:"display,omitempty"`
	}
	fhirPeriod struct {
		Start string `json:"start,omitempty"`
		End   string `json:"end,omitempty"`
	}
	fhirMeta struct {
		VersionID   string       `json:"versionId,omitempty"`
		LastUpdated string       `json:"lastUpdated,omitempty"`
		Tag         []fhirCoding `json:"tag,omitempty"`
	}
)

type fhirPatient struct {
	ResourceType     string           `json:"resourceType"`
	ID               string           `json:"id"`
	Meta             *fhirMeta        `json:"meta,omitempty"`
	Identifier       []fhirIdentifier `json:"identifier,omitempty"`
	Name             []fhirHumanName  `json:"name,omitempty"`
	Telecom          []fhirTelecom    `json:"telecom,omitempty"`
	Gender           string           `json:"gender,omitempty"`
	BirthDate        string           `json:"birthDate,omitempty"`
	DeceasedBoolean  *bool            `json:"deceasedBoolean,omitempty"`
	DeceasedDateTime string           `json:"deceasedDateTime,omitempty"`
}

type fhirHumanName struct {
	Use    string   `json:"use,omitempty"`
	Family string   `json:"family,omitempty"`
	Given  []string `json:"given,omitempty"`
}

type fhirTelecom struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type fhirObservation struct {
	ResourceType         string         `json:"resourceType"`
	ID                   string         `json:"id"`
	Status               string         `json:"status"`
	Category             []fhirConcept  `json:"category,omitempty"`
	Code                 fhirConcept    `json:"code"`
	Subject              fhirReference  `json:"subject"`
	Encounter            *fhirReference `json:"encounter,omitempty"`
	EffectiveDateTime    string         `json:"effectiveDateTime"`
	Issued               string         `json:"issued,omitempty"`
	ValueQuantity        *fhirQuantity  `json:"valueQuantity,omitempty"`
	ValueCodeableConcept *fhirConcept   `json:"valueCodeableConcept,omitempty"`
}

type fhirQuantity struct {
	Value  float64 `json:"value"`
	Unit   string  `json:"unit,omitempty"`
	System string  `json:"system,omitempty"`
	Code   string  `json:"code,omitempty"`
}

type fhirEncounter struct {
	ResourceType string              `json:"resourceType"`
	ID           string              `json:"id"`
	Status       string              `json:"status"`
	Class        fhirCoding          `json:"class"`
	Subject      fhirReference       `json:"subject"`
	Period       fhirPeriod          `json:"period"`
	Location     []fhirEncounterSite `json:"location,omitempty"`
}

type fhirEncounterSite struct {
	Location fhirReference `json:"location"`
	Status   string        `json:"status,omitempty"`
}

type fhirMedicationRequest struct {
	ResourceType              string         `json:"resourceType"`
	ID                        string         `json:"id"`
	Status                    string         `json:"status"`
	Intent                    string         `json:"intent"`
	MedicationCodeableConcept fhirConcept    `json:"medicationCodeableConcept"`
	Subject                   fhirReference  `json:"subject"`
	AuthoredOn                string         `json:"authoredOn"`
	Requester                 *fhirReference `json:"requester,omitempty"`
	DosageInstruction         []fhirDosage   `json:"dosageInstruction"`
}

type fhirDosage struct {
	Text  string       `json:"text"`
	Route *fhirConcept `json:"route,omitempty"`
}

type fhirAllergy struct {
	ResourceType       string         `json:"resourceType"`
	ID                 string         `json:"id"`
	ClinicalStatus     fhirConcept    `json:"clinicalStatus"`
	VerificationStatus fhirConcept    `json:"verificationStatus"`
	Criticality        string         `json:"criticality,omitempty"`
	Code               fhirConcept    `json:"code"`
	Patient            fhirReference  `json:"patient"`
	RecordedDate       string         `json:"recordedDate"`
	Reaction           []fhirReaction `json:"reaction,omitempty"`
}

type fhirReaction struct {
	Manifestation []fhirConcept `json:"manifestation"`
}

type fhirCondition struct {
	ResourceType   string        `json:"resourceType"`
	ID             string        `json:"id"`
	ClinicalStatus fhirConcept   `json:"clinicalStatus"`
	Code           fhirConcept   `json:"code"`
	Subject        fhirReference `json:"subject"`
	OnsetDateTime  string        `json:"onsetDateTime,omitempty"`
	RecordedDate   string        `json:"recordedDate"`
}
