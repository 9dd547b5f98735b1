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
	read := func(typ string, response any, projection string, get func(context.Context, chartstream.TenantID, uuid.UUID) (any, error)) route {
		return route{Method: http.MethodGet, Path: fhirBase + "/" + typ + "/:id", Summary: "FHIR: read a " + typ, Roles: readers,
			Response: response, ContentType: FHIRContentType, Handle: func(c echo.Context) error {
				id, err := pathID(c, "id")
				if err != nil {
					return err
				}
				s.awaitConsistency(c, projection)
				v, err := get(c.Request().Context(), callerOf(c).Tenant, id)
				if err != nil {
					return err
				}
				return writeFHIR(c, http.StatusOK, v)
			}}
	}
	pool := s.deps.ReadModels
	return []route{
		read("Observation", new(fhirObservation), "observations", fhirRead(pool, observations.ByID, fhirObservationOf)),
		read("Encounter", new(fhirEncounter), "census", fhirRead(pool, census.ByID, fhirEncounterOf)),
		read("MedicationRequest", new(fhirMedicationRequest), "orders", fhirRead(pool, orders.ByID, fhirMedicationRequestOf)),
		read("AllergyIntolerance", new(fhirAllergy), "chart", fhirRead(pool, chart.AllergyByID, func(a chart.PatientAllergy) fhirAllergy {
			return fhirAllergyOf(a.PatientID, a.Allergy)
		})),
		read("Condition", new(fhirCondition), "chart", fhirRead(pool, chart.ConditionByID, func(c chart.PatientCondition) fhirCondition {
			return fhirConditionOf(c.PatientID, c.Condition)
		})),
	}
}

// fhirRead reads one row with get and, only when found, maps it to its
// FHIR resource.
func fhirRead[T, R any](pool *pgxpool.Pool, get func(context.Context, *pgxpool.Pool, chartstream.TenantID, uuid.UUID) (T, error), toFHIR func(T) R) func(context.Context, chartstream.TenantID, uuid.UUID) (any, error) {
	return func(ctx context.Context, tenant chartstream.TenantID, id uuid.UUID) (any, error) {
		v, err := get(ctx, pool, tenant, id)
		if err != nil {
			return nil, err
		}
		return toFHIR(v), nil
	}
}
