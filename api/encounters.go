package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/encounter"
)

type (
	startEncounterRequest struct {
		Class    encounter.Class `json:"class" required:"true" enum:"inpatient,outpatient,emergency"`
		Location string          `json:"location" required:"true" maxLength:"128"`
		Reason   string          `json:"reason,omitempty" maxLength:"1000"`
	}
	transferPatientRequest struct {
		Location string `json:"location" required:"true" maxLength:"128"`
	}
)

// encounterRoutes are the commands on encounters.
func (s *Server) encounterRoutes() []route {
	return []route{
		{Method: http.MethodPost, Path: "/v1/patients/:id/encounters", Summary: "Start an encounter", Roles: []chartstream.Role{chartstream.RoleClinician}, Created: true,
			Request: new(startEncounterRequest), Handle: s.startEncounter,
			Example: startEncounterRequest{Class: "inpatient", Location: "Ward 3B", Reason: "Chest pain"}},
		{Method: http.MethodPost, Path: "/v1/encounters/:id/transfer", Summary: "Transfer the patient to another location", Roles: []chartstream.Role{chartstream.RoleClinician, chartstream.RoleNurse},
			Request: new(transferPatientRequest), Handle: s.transferPatient,
			Example: transferPatientRequest{Location: "ICU"}},
		{Method: http.MethodPost, Path: "/v1/encounters/:id/discharge", Summary: "Discharge the patient", Roles: []chartstream.Role{chartstream.RoleClinician},
			Handle: s.dischargePatient},
	}
}

func (s *Server) startEncounter(c echo.Context) error {
	var req startEncounterRequest
	if err := decodeBody(c, &req, false); err != nil {
		return err
	}
	return s.command(c, "/v1/encounters/%[2]s", func(t target) commands.Command {
		return encounter.StartEncounter{PatientID: t.id, Class: req.Class, Location: req.Location, Reason: req.Reason}
	})
}

func (s *Server) transferPatient(c echo.Context) error {
	var req transferPatientRequest
	if err := decodeBody(c, &req, false); err != nil {
		return err
	}
	return s.command(c, "", func(t target) commands.Command {
		return encounter.TransferPatient{EncounterID: t.id, Location: req.Location, ExpectedVersion: t.expected}
	})
}

func (s *Server) dischargePatient(c echo.Context) error {
	return s.command(c, "", func(t target) commands.Command {
		return encounter.DischargePatient{EncounterID: t.id, ExpectedVersion: t.expected}
	})
}
