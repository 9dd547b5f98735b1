package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/projections"
	"github.com/chartstream/chartstream/projections/census"
	"github.com/chartstream/chartstream/projections/chart"
	"github.com/chartstream/chartstream/projections/observations"
	"github.com/chartstream/chartstream/projections/orders"
)

func (s *Server) fhirReadPatient(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	s.awaitConsistency(c, "chart")
	ch, err := chart.PatientChart(c.Request().Context(), s.deps.ReadModels, callerOf(c).Tenant, id)
	if err != nil {
		return err
	}
	c.Response().Header().Set(headerETag, `W/"`+strconv.FormatInt(ch.Version, 10)+`"`)
	return writeFHIR(c, http.StatusOK, fhirPatientOf(ch.PatientSummary, &ch))
}

func (s *Server) fhirSearchPatients(c echo.Context) error {
	q, page, err := fhirQuery(c, "Patient")
	if err != nil {
		return err
	}
	p := chart.SearchParams{Name: q.Get("name"), Cursor: page.Cursor, Limit: page.Limit}
	if v := q.Get("birthdate"); v != "" {
		day := strings.TrimPrefix(v, "eq")
		if _, err := time.Parse(time.DateOnly, day); err != nil {
			return chartstream.Invalid(chartstream.FieldError{Field: "birthdate", Reason: "must be a day YYYY-MM-DD, without prefix or with eq"})
		}
		p.BirthDate = day
	}
	if v := q.Get("identifier"); v != "" {
		system, value, hasSystem := strings.Cut(v, "|")
		if !hasSystem {
			value = system
		}
		if (hasSystem && system != mrnSystem) || value == "" {
			return writeSearchset(c, "Patient", []chart.PatientSummary{}, "", nil, nil) // no MRN of another system
		}
		p.MRN = value
	}
	s.awaitConsistency(c, "chart")
	res, err := chart.SearchPatients(c.Request().Context(), s.deps.ReadModels, callerOf(c).Tenant, p)
	if err != nil {
		return err
	}
	return writeSearchset(c, "Patient", res.Items, res.Next,
		func(p chart.PatientSummary) uuid.UUID { return p.PatientID },
		func(p chart.PatientSummary) any { return fhirPatientOf(p, nil) })
}

func (s *Server) fhirSearchObservations(c echo.Context) error {
	q, page, err := fhirQuery(c, "Observation")
	if err != nil {
		return err
	}
	params := observations.ObservationParams{Cursor: page.Cursor, Limit: page.Limit}
	empty := false
	if v := q.Get("code"); v != "" {
		system, code, hasSystem := strings.Cut(v, "|")
		if !hasSystem {
			code = system
		}
		params.Code, empty = code, hasSystem && system != loincSystem
	}
	for _, d := range q["date"] {
		since, until, err := dateBounds(d)
		if err != nil {
			return err
		}
		if !since.IsZero() && since.After(params.Since) {
			params.Since = since
		}
		if !until.IsZero() && (params.Until.IsZero() || until.Before(params.Until)) {
			params.Until = until
		}
	}
	empty = empty || (!params.Since.IsZero() && !params.Until.IsZero() && !params.Since.Before(params.Until))
	return s.fhirPatientSearch(c, "Observation", q, []string{"observations"}, func(ctx context.Context, tenant chartstream.TenantID, patient uuid.UUID) error {
		res := projections.Page[observations.Observation]{}
		if !empty {
			if res, err = observations.Observations(ctx, s.deps.ReadModels, tenant, patient, params); err != nil {
				return err
			}
		}
		return writeSearchset(c, "Observation", res.Items, res.Next,
			func(o observations.Observation) uuid.UUID { return o.ObservationID },
			func(o observations.Observation) any { return fhirObservationOf(o) })
	})
}

func (s *Server) fhirSearchEncounters(c echo.Context) error {
	q, page, err := fhirQuery(c, "Encounter")
	if err != nil {
		return err
	}
	params := census.EncounterParams{Status: q.Get("status"), Cursor: page.Cursor, Limit: page.Limit}
	search := func(ctx context.Context, tenant chartstream.TenantID, patient uuid.UUID) error {
		params.PatientID = patient
		res, err := census.Encounters(ctx, s.deps.ReadModels, tenant, params)
		if err != nil {
			return err
		}
		return writeSearchset(c, "Encounter", res.Items, res.Next,
			func(e census.Encounter) uuid.UUID { return e.EncounterID },
			func(e census.Encounter) any { return fhirEncounterOf(e) })
	}
	if !q.Has("patient") {
		s.awaitConsistency(c, "census")
		return search(c.Request().Context(), callerOf(c).Tenant, uuid.Nil)
	}
	return s.fhirPatientSearch(c, "Encounter", q, []string{"census"}, search)
}

func (s *Server) fhirSearchMedicationRequests(c echo.Context) error {
	q, page, err := fhirQuery(c, "MedicationRequest")
	if err != nil {
		return err
	}
	return s.fhirPatientSearch(c, "MedicationRequest", q, []string{"orders"}, func(ctx context.Context, tenant chartstream.TenantID, patient uuid.UUID) error {
		all, err := orders.MedicationOrders(ctx, s.deps.ReadModels, tenant, patient, q.Get("status"))
		if err != nil {
			return err
		}
		return writeListPage(c, "MedicationRequest", all, page, func(o orders.MedicationOrder) uuid.UUID { return o.OrderID },
			func(o orders.MedicationOrder) any { return fhirMedicationRequestOf(o) })
	})
}

func (s *Server) fhirSearchAllergies(c echo.Context) error {
	return s.fhirChartSearch(c, "AllergyIntolerance", func(ch chart.Chart, page fhirPage) error {
		return writeListPage(c, "AllergyIntolerance", ch.Allergies, page, func(a chart.Allergy) uuid.UUID { return a.AllergyID },
			func(a chart.Allergy) any { return fhirAllergyOf(ch.PatientID, a) })
	})
}

func (s *Server) fhirSearchConditions(c echo.Context) error {
	return s.fhirChartSearch(c, "Condition", func(ch chart.Chart, page fhirPage) error {
		return writeListPage(c, "Condition", ch.Conditions, page, func(a chart.Condition) uuid.UUID { return a.ConditionID },
			func(a chart.Condition) any { return fhirConditionOf(ch.PatientID, a) })
	})
}

// fhirChartSearch serves a search answered from the patient's chart.
func (s *Server) fhirChartSearch(c echo.Context, typ string, write func(chart.Chart, fhirPage) error) error {
	q, page, err := fhirQuery(c, typ)
	if err != nil {
		return err
	}
	patient, err := patientParam(q)
	if err != nil {
		return err
	}
	s.awaitConsistency(c, "chart")
	ch, err := chart.PatientChart(c.Request().Context(), s.deps.ReadModels, callerOf(c).Tenant, patient)
	if err != nil {
		return err
	}
	return write(ch, page)
}

// fhirPatientSearch serves a search of one patient's records, as
// patientRead does: 404 unless the patient is in the caller's tenant, so an
// empty Bundle never hints that another tenant's patient exists.
func (s *Server) fhirPatientSearch(c echo.Context, typ string, q url.Values, projectionNames []string, search func(context.Context, chartstream.TenantID, uuid.UUID) error) error {
	patient, err := patientParam(q)
	if err != nil {
		return err
	}
	s.awaitConsistency(c, append(projectionNames, "chart")...)
	ctx, tenant := c.Request().Context(), callerOf(c).Tenant
	if _, err := chart.PatientChart(ctx, s.deps.ReadModels, tenant, patient); err != nil {
		return err
	}
	return search(ctx, tenant, patient)
}

// patientParam reads the required patient reference, "Patient/id" or "id".
// A well-formed value that is no id names no patient: 404, as on the JSON
// routes.
func patientParam(q url.Values) (uuid.UUID, error) {
	v := q.Get("patient")
	if v == "" {
		return uuid.Nil, chartstream.Invalid(chartstream.FieldError{Field: "patient", Reason: "is required"})
	}
	return parseID("patient", strings.TrimPrefix(v, "Patient/"))
}

// fhirPage is a search's paging: the opaque cursor and the page size.
type fhirPage struct {
	Cursor string
	Limit  int
}

// searchParamsKey keeps a search's parameters in the Echo context, for its
// Bundle's links.
const searchParamsKey = "chartstream.search"

// fhirQuery returns a search's parameters, parsed strictly (parseQuery),
// refusing those not in fhirSearches for typ: a misspelled filter must not
// silently widen a search of PHI. Each is taken once, but date at most
// twice (a lower and an upper bound); empty ones are ignored, as FHIR
// says. A GET takes them from the URL, a POST to _search from its form
// body, so that they stay out of URLs and their logs.
func fhirQuery(c echo.Context, typ string) (url.Values, fhirPage, error) {
	params := map[string]queryParam{paramCursor: {maxLen: 64, repeats: 1}, paramCount: {maxLen: 3, repeats: 1}}
	for _, r := range fhirSearches {
		if r.Type == typ {
			for _, p := range r.Params {
				params[p.Name] = queryParam{maxLen: maxQueryValue, repeats: 1}
			}
		}
	}
	if _, ok := params["date"]; ok {
		params["date"] = queryParam{maxLen: maxQueryValue, repeats: 2}
	}
	raw := c.Request().URL.RawQuery
	if c.Request().Method == http.MethodPost {
		body, err := readBody(c.Request())
		if err != nil {
			return nil, fhirPage{}, err
		}
		if len(body) > 0 {
			if err := wantContentType(c.Request(), echo.MIMEApplicationForm); err != nil {
				return nil, fhirPage{}, err
			}
		}
		raw = string(body)
	}
	q, err := parseQuery(raw, params, true)
	if err != nil {
		return nil, fhirPage{}, err
	}
	page := fhirPage{Cursor: q.Get(paramCursor)}
	if v := q.Get(paramCount); v != "" {
		if page.Limit, err = plainInt(paramCount, v, `minimum:"1" maximum:"200"`); err != nil {
			return nil, page, err
		}
	}
	c.Set(searchParamsKey, q)
	return q, page, nil
}
