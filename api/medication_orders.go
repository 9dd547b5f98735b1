package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/medicationorder"
	"github.com/chartstream/chartstream/commands/patient"
)

type (
	prescribeMedicationRequest struct {
		Medication coding `json:"medication" required:"true" description:"RxNorm code and display"`
		Dose       string `json:"dose" required:"true" maxLength:"64"`
		Route      string `json:"route" required:"true" maxLength:"64"`
		Frequency  string `json:"frequency" required:"true" maxLength:"64"`
		// Override prescribes despite a recorded allergy to the substance;
		// its reason is recorded with the order.
		Override *struct {
			Reason string `json:"reason" required:"true" maxLength:"1000"`
		} `json:"override,omitempty"`
	}
	discontinueMedicationRequest struct {
		Reason string `json:"reason,omitempty" maxLength:"1000"`
	}
)

// medicationOrderRoutes are the commands on medication orders.
func (s *Server) medicationOrderRoutes() []route {
	clinician := []chartstream.Role{chartstream.RoleClinician}
	return []route{
		{Method: http.MethodPost, Path: "/v1/patients/:id/medication-orders", Summary: "Prescribe a medication", Roles: clinician, Created: true,
			Request: new(prescribeMedicationRequest), Handle: s.prescribeMedication,
			Example: prescribeMedicationRequest{Medication: coding{Code: "197361", Display: "Amlodipine 5 MG Oral Tablet", System: patient.RxNorm}, Dose: "5 mg", Route: "oral", Frequency: "daily"}},
		{Method: http.MethodPost, Path: "/v1/medication-orders/:id/discontinue", Summary: "Discontinue a medication order", Roles: clinician,
			Request: new(discontinueMedicationRequest), OptionalBody: true, Handle: s.discontinueMedication},
	}
}

func (s *Server) prescribeMedication(c echo.Context) error {
	var req prescribeMedicationRequest
	if err := decodeBody(c, &req, false); err != nil {
		return err
	}
	return s.command(c, "/v1/medication-orders/%[2]s", func(t target) commands.Command {
		cmd := medicationorder.PrescribeMedication{
			PatientID: t.id, Medication: req.Medication.coding(), Dose: req.Dose, Route: req.Route, Frequency: req.Frequency,
			Prescriber: t.Subject,
		}
		if req.Override != nil {
			cmd.Override = &medicationorder.Override{Reason: req.Override.Reason}
		}
		return cmd
	})
}

func (s *Server) discontinueMedication(c echo.Context) error {
	var req discontinueMedicationRequest
	if err := decodeBody(c, &req, true); err != nil {
		return err
	}
	return s.command(c, "", func(t target) commands.Command {
		return medicationorder.DiscontinueMedication{OrderID: t.id, Reason: req.Reason, ExpectedVersion: t.expected}
	})
}
