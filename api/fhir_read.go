package api

import (
	"context"
	"net/http"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/projections/census"
	"github.com/chartstream/chartstream/projections/chart"
	"github.com/chartstream/chartstream/projections/observations"
	"github.com/chartstream/chartstream/projections/orders"
)

// fhirReadRoutes are the reads of single resources, so every entry's
// fullUrl in a searchset resolves.
func (s *Server) fhirReadRoutes() []route {
	read := func(typ string, response any, projection string, get func(context.Context, chartstream.TenantID, uuid.UUID) (any, uuid.UUID, error)) route {
		return route{Method: http.MethodGet, Path: fhirBase + "/" + typ + "/:id", Summary: "FHIR: read a " + typ, Roles: readers,
			Response: response, ContentType: FHIRContentType, PHI: namedPHI, Handle: func(c echo.Context) error {
				id, err := pathID(c, "id")
				if err != nil {
					return err
				}
				s.awaitConsistency(c, projection)
				v, patient, err := get(c.Request().Context(), callerOf(c).Tenant, id)
				if err != nil {
					return err
				}
				accessed(c, patient)
				return writeFHIR(c, http.StatusOK, v)
			}}
	}
	pool := s.deps.ReadModels
	return []route{
		read("Observation", new(fhirObservation), "observations", fhirRead(pool, observations.ByID, fhirObservationOf,
			func(o observations.Observation) uuid.UUID { return o.PatientID })),
		read("Encounter", new(fhirEncounter), "census", fhirRead(pool, census.ByID, fhirEncounterOf,
			func(e census.Encounter) uuid.UUID { return e.PatientID })),
		read("MedicationRequest", new(fhirMedicationRequest), "orders", fhirRead(pool, orders.ByID, fhirMedicationRequestOf,
			func(o orders.MedicationOrder) uuid.UUID { return o.PatientID })),
		read("AllergyIntolerance", new(fhirAllergy), "chart", fhirRead(pool, chart.AllergyByID, func(a chart.PatientAllergy) fhirAllergy {
			return fhirAllergyOf(a.PatientID, a.Allergy)
		}, func(a chart.PatientAllergy) uuid.UUID { return a.PatientID })),
		read("Condition", new(fhirCondition), "chart", fhirRead(pool, chart.ConditionByID, func(c chart.PatientCondition) fhirCondition {
			return fhirConditionOf(c.PatientID, c.Condition)
		}, func(c chart.PatientCondition) uuid.UUID { return c.PatientID })),
	}
}

// fhirRead reads one row with get and, only when found, maps it to its
// FHIR resource and names its patient.
func fhirRead[T, R any](pool *pgxpool.Pool, get func(context.Context, *pgxpool.Pool, chartstream.TenantID, uuid.UUID) (T, error), toFHIR func(T) R,
	patientOf func(T) uuid.UUID) func(context.Context, chartstream.TenantID, uuid.UUID) (any, uuid.UUID, error) {
	return func(ctx context.Context, tenant chartstream.TenantID, id uuid.UUID) (any, uuid.UUID, error) {
		v, err := get(ctx, pool, tenant, id)
		if err != nil {
			return nil, uuid.Nil, err
		}
		return toFHIR(v), patientOf(v), nil
	}
}
