package api

import (
	"net/http"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/patient"
)

// Request bodies of the patient routes: snake_case JSON in FHIR's
// vocabulary. Unknown fields are refused.
type (
	humanName struct {
		Family string   `json:"family" required:"true" maxLength:"100"`
		Given  []string `json:"given,omitempty" maxItems:"5" description:"each at most 100 characters"`
	}
	contactPoint struct {
		Phone string `json:"phone,omitempty" maxLength:"32"`
		Email string `json:"email,omitempty" format:"email" maxLength:"254"`
	}
	coding struct {
		Code    string `json:"code" required:"true" maxLength:"64"`
		Display string `json:"display,omitempty" maxLength:"256"`
		System  string `json:"system" required:"true" format:"uri" maxLength:"256"`
	}
	registerPatientRequest struct {
		MRN       string       `json:"mrn" required:"true" maxLength:"64" description:"medical record number, unique within the tenant"`
		Name      humanName    `json:"name" required:"true"`
		BirthDate string       `json:"birth_date" required:"true" format:"date" maxLength:"10"`
		Sex       patient.Sex  `json:"sex" required:"true" enum:"female,male,other,unknown"`
		Contact   contactPoint `json:"contact"`
	}
	updateDemographicsRequest struct {
		Name      *humanName    `json:"name,omitempty"`
		BirthDate *string       `json:"birth_date,omitempty" format:"date" maxLength:"10"`
		Sex       *patient.Sex  `json:"sex,omitempty" enum:"female,male,other,unknown"`
		Contact   *contactPoint `json:"contact,omitempty"`
	}
	recordAllergyRequest struct {
		Substance   coding              `json:"substance" required:"true"`
		Criticality patient.Criticality `json:"criticality" required:"true" enum:"low,high,unable-to-assess"`
		Reaction    string              `json:"reaction,omitempty" maxLength:"1000"`
	}
	diagnoseConditionRequest struct {
		Code    string `json:"code" required:"true" maxLength:"64"`
		System  string `json:"system" required:"true" format:"uri" maxLength:"256"`
		Display string `json:"display,omitempty" maxLength:"256"`
		Onset   string `json:"onset,omitempty" format:"date" maxLength:"10"`
	}
	recordObservationRequest struct {
		Code        string     `json:"code" required:"true" maxLength:"64" description:"LOINC code"`
		System      string     `json:"system" required:"true" format:"uri" maxLength:"256"`
		Value       *float64   `json:"value,omitempty" description:"numeric result; with unit"`
		Unit        string     `json:"unit,omitempty" maxLength:"32" description:"UCUM unit"`
		ValueCode   string     `json:"value_code,omitempty" maxLength:"64" description:"coded result, instead of value"`
		EffectiveAt string     `json:"effective_at" required:"true" format:"date-time"`
		EncounterID *uuid.UUID `json:"encounter_id,omitempty"`
	}
	recordDeathRequest struct {
		DeceasedAt string `json:"deceased_at" required:"true" format:"date-time"`
	}
)

func (n humanName) name() patient.HumanName {
	return patient.HumanName{Family: n.Family, Given: n.Given}
}
func (c contactPoint) contact() patient.Contact {
	return patient.Contact{Phone: c.Phone, Email: c.Email}
}
func (c coding) coding() patient.Coding {
	return patient.Coding{Code: c.Code, Display: c.Display, System: c.System}
}

// patientRoutes are the commands on patients.
func (s *Server) patientRoutes() []route {
	all := []chartstream.Role{chartstream.RoleClinician}
	bedside := []chartstream.Role{chartstream.RoleClinician, chartstream.RoleNurse}
	return []route{
		{Method: http.MethodPost, Path: "/v1/patients", Summary: "Register a patient", Roles: all, Created: true,
			Request: new(registerPatientRequest), Handle: s.registerPatient,
			Example: registerPatientRequest{MRN: "A-1001", Name: humanName{Family: "Lovelace", Given: []string{"Ada"}}, BirthDate: "1990-01-02", Sex: "female"}},
		{Method: http.MethodPatch, Path: "/v1/patients/:id", Summary: "Update a patient's demographics", Roles: all,
			Request: new(updateDemographicsRequest), Handle: s.updateDemographics,
			Example: updateDemographicsRequest{Contact: &contactPoint{Phone: "+44 20 7946 0000"}}},
		{Method: http.MethodPost, Path: "/v1/patients/:id/allergies", Summary: "Record an allergy", Roles: bedside, Created: true,
			Request: new(recordAllergyRequest), Handle: s.recordAllergy,
			Example: recordAllergyRequest{Substance: coding{Code: "7980", Display: "Penicillin G", System: patient.RxNorm}, Criticality: "high"}},
		{Method: http.MethodPost, Path: "/v1/patients/:id/allergies/:aid/refute", Summary: "Refute a recorded allergy", Roles: bedside,
			Handle: s.refuteAllergy},
		{Method: http.MethodPost, Path: "/v1/patients/:id/conditions", Summary: "Diagnose a condition", Roles: all, Created: true,
			Request: new(diagnoseConditionRequest), Handle: s.diagnoseCondition,
			Example: diagnoseConditionRequest{Code: "44054006", System: "http://snomed.info/sct", Display: "Type 2 diabetes", Onset: "2020-05-01"}},
		{Method: http.MethodPost, Path: "/v1/patients/:id/conditions/:cid/resolve", Summary: "Resolve a condition", Roles: all,
			Handle: s.resolveCondition},
		{Method: http.MethodPost, Path: "/v1/patients/:id/observations", Summary: "Record an observation", Roles: bedside, Created: true,
			Request: new(recordObservationRequest), Handle: s.recordObservation,
			Example: recordObservationRequest{Code: "8867-4", System: patient.LOINC, Value: ptr(72.0), Unit: "/min", EffectiveAt: "2026-11-26T10:00:00Z"}},
		{Method: http.MethodPost, Path: "/v1/patients/:id/deceased", Summary: "Record a patient's death", Roles: all,
			Request: new(recordDeathRequest), Handle: s.recordDeath,
			Example: recordDeathRequest{DeceasedAt: "2026-11-26T10:00:00Z"}},
	}
}

func ptr[T any](v T) *T { return &v }

func (s *Server) registerPatient(c echo.Context) error {
	var req registerPatientRequest
	if err := decodeBody(c, &req, false); err != nil {
		return err
	}
	return s.command(c, "/v1/patients/%[2]s", func(target) commands.Command {
		return patient.RegisterPatient{MRN: req.MRN, Name: req.Name.name(), BirthDate: req.BirthDate, Sex: req.Sex, Contact: req.Contact.contact()}
	})
}

func (s *Server) updateDemographics(c echo.Context) error {
	var req updateDemographicsRequest
	if err := decodeBody(c, &req, false); err != nil {
		return err
	}
	return s.command(c, "", func(t target) commands.Command {
		cmd := patient.UpdateDemographics{PatientID: t.id, BirthDate: req.BirthDate, Sex: req.Sex, ExpectedVersion: t.expected}
		if req.Name != nil {
			cmd.Name = ptr(req.Name.name())
		}
		if req.Contact != nil {
			cmd.Contact = ptr(req.Contact.contact())
		}
		return cmd
	})
}

func (s *Server) recordAllergy(c echo.Context) error {
	var req recordAllergyRequest
	if err := decodeBody(c, &req, false); err != nil {
		return err
	}
	return s.command(c, "/v1/patients/%s/allergies/%s", func(t target) commands.Command {
		return patient.RecordAllergy{PatientID: t.id, Substance: req.Substance.coding(), Criticality: req.Criticality, Reaction: req.Reaction, ExpectedVersion: t.expected}
	})
}

func (s *Server) refuteAllergy(c echo.Context) error {
	allergy, err := pathID(c, "aid")
	if err != nil {
		return err
	}
	return s.command(c, "", func(t target) commands.Command {
		return patient.RefuteAllergy{PatientID: t.id, AllergyID: allergy, ExpectedVersion: t.expected}
	})
}

func (s *Server) diagnoseCondition(c echo.Context) error {
	var req diagnoseConditionRequest
	if err := decodeBody(c, &req, false); err != nil {
		return err
	}
	return s.command(c, "/v1/patients/%s/conditions/%s", func(t target) commands.Command {
		return patient.DiagnoseCondition{PatientID: t.id, Code: req.Code, System: req.System, Display: req.Display, Onset: req.Onset, ExpectedVersion: t.expected}
	})
}

func (s *Server) resolveCondition(c echo.Context) error {
	condition, err := pathID(c, "cid")
	if err != nil {
		return err
	}
	return s.command(c, "", func(t target) commands.Command {
		return patient.ResolveCondition{PatientID: t.id, ConditionID: condition, ExpectedVersion: t.expected}
	})
}

func (s *Server) recordObservation(c echo.Context) error {
	var req recordObservationRequest
	if err := decodeBody(c, &req, false); err != nil {
		return err
	}
	return s.command(c, "/v1/patients/%s/observations/%s", func(t target) commands.Command {
		return patient.RecordObservation{PatientID: t.id, Code: req.Code, System: req.System, Value: req.Value, Unit: req.Unit, ValueCode: req.ValueCode,
			EffectiveAt: req.EffectiveAt, EncounterID: req.EncounterID, ExpectedVersion: t.expected}
	})
}

func (s *Server) recordDeath(c echo.Context) error {
	var req recordDeathRequest
	if err := decodeBody(c, &req, false); err != nil {
		return err
	}
	return s.command(c, "", func(t target) commands.Command {
		return patient.RecordDeath{PatientID: t.id, DeceasedAt: req.DeceasedAt, ExpectedVersion: t.expected}
	})
}
