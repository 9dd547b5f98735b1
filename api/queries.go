package api

import (
	"context"
	"net/http"
	"strconv"
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

// Query parameters of the read routes, for the OpenAPI document.
type (
	patientSearchQuery struct {
		MRN       string `query:"mrn" maxLength:"64" description:"exact medical record number"`
		Name      string `query:"name" maxLength:"100" description:"prefix or similar spelling, ignoring case and accents"`
		BirthDate string `query:"birth_date" format:"date" maxLength:"10"`
		Cursor    string `query:"cursor" maxLength:"64" description:"a page's next_cursor"`
		Limit     int    `query:"limit" minimum:"1" maximum:"200"`
	}
	// patientSearchRequest is patientSearchQuery as the body of POST
	// /v1/patients/search, which keeps PHI out of URLs. (One converts to
	// the other: the fields must stay the same.)
	patientSearchRequest struct {
		MRN       string `json:"mrn,omitempty" maxLength:"64" description:"exact medical record number"`
		Name      string `json:"name,omitempty" maxLength:"100" description:"prefix or similar spelling, ignoring case and accents"`
		BirthDate string `json:"birth_date,omitempty" format:"date" maxLength:"10"`
		Cursor    string `json:"cursor,omitempty" maxLength:"64" description:"a page's next_cursor"`
		Limit     int    `json:"limit,omitempty" minimum:"1" maximum:"200"`
	}
	observationQuery struct {
		Code   string `query:"code" maxLength:"64" description:"LOINC code"`
		Since  string `query:"since" format:"date-time" maxLength:"64"`
		Until  string `query:"until" format:"date-time" maxLength:"64"`
		Cursor string `query:"cursor" maxLength:"64"`
		Limit  int    `query:"limit" minimum:"1" maximum:"200"`
	}
	encounterQuery struct {
		Status   string `query:"status" enum:"in-progress,finished" maxLength:"16"`
		Location string `query:"location" maxLength:"128"`
		Cursor   string `query:"cursor" maxLength:"64"`
		Limit    int    `query:"limit" minimum:"1" maximum:"200"`
	}
	orderQuery struct {
		Status string `query:"status" enum:"active,stopped" maxLength:"16"`
	}
)

// readers may read charts: the care team and auditors.
var readers = []chartstream.Role{chartstream.RoleClinician, chartstream.RoleNurse, chartstream.RoleAuditor}

// queryRoutes are the clinician's reads, served from the read models.
func (s *Server) queryRoutes() []route {
	return []route{
		{Method: http.MethodGet, Path: "/v1/patients", Summary: "Search patients (prefer POST /v1/patients/search: PHI stays out of URLs)", Roles: readers,
			Query: new(patientSearchQuery), Response: new(projections.Page[chart.PatientSummary]), PHI: namedPHI, Handle: s.searchPatients},
		{Method: http.MethodPost, Path: "/v1/patients/search", Summary: "Search patients, the parameters in the body", Roles: readers, Read: true,
			Request: new(patientSearchRequest), OptionalBody: true, Response: new(projections.Page[chart.PatientSummary]), PHI: namedPHI, Handle: s.searchPatientsByPost,
			Example: patientSearchRequest{Name: "lovelace", Limit: 20}},
		{Method: http.MethodGet, Path: "/v1/patients/:id", Summary: "A patient's chart; with as_of, as it stood then, rebuilt from the event store",
			Roles: readers, Query: new(chartQuery), Response: new(chart.Chart), PHI: patientPHI, Handle: s.patientChart},
		{Method: http.MethodGet, Path: "/v1/patients/:id/observations", Summary: "A patient's observations over time", Roles: readers,
			Query: new(observationQuery), Response: new(projections.Page[observations.Observation]), PHI: patientPHI, Handle: s.patientObservations},
		{Method: http.MethodGet, Path: "/v1/patients/:id/medication-orders", Summary: "A patient's medication orders", Roles: readers,
			Query: new(orderQuery), Response: new([]orders.MedicationOrder), PHI: patientPHI, Handle: s.patientMedicationOrders},
		{Method: http.MethodGet, Path: "/v1/encounters", Summary: "Encounters, e.g. the census of a location", Roles: readers,
			Query: new(encounterQuery), Response: new(projections.Page[census.Encounter]), PHI: namedPHI, Handle: s.listEncounters},
	}
}

func (s *Server) searchPatients(c echo.Context) error {
	var q patientSearchQuery
	if err := bindQuery(c, &q); err != nil {
		return err
	}
	return s.patientSearch(c, q)
}

func (s *Server) searchPatientsByPost(c echo.Context) error {
	var req patientSearchRequest
	if err := decodeBody(c, &req, true); err != nil {
		return err
	}
	return s.patientSearch(c, patientSearchQuery(req))
}

// patientSearch answers a search of the caller's tenant's patients.
func (s *Server) patientSearch(c echo.Context, q patientSearchQuery) error {
	if q.BirthDate != "" {
		if _, err := time.Parse(time.DateOnly, q.BirthDate); err != nil {
			return chartstream.Invalid(chartstream.FieldError{Field: "birth_date", Reason: "must be a date YYYY-MM-DD"})
		}
	}
	cl := callerOf(c)
	s.awaitConsistency(c, "chart")
	page, err := chart.SearchPatients(c.Request().Context(), s.deps.ReadModels, cl.Tenant, chart.SearchParams{
		MRN: q.MRN, Name: q.Name, BirthDate: q.BirthDate, Cursor: q.Cursor, Limit: q.Limit,
	})
	if err != nil {
		return err
	}
	for _, p := range page.Items {
		accessed(c, p.PatientID)
	}
	return c.JSON(http.StatusOK, page)
}

func (s *Server) patientChart(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	var q chartQuery
	if err := bindQuery(c, &q); err != nil {
		return err
	}
	if q.AsOf != "" {
		asOf, err := parseAsOf(q.AsOf)
		if err != nil {
			return err
		}
		ch, last, err := s.chartAsOf(c.Request().Context(), callerOf(c).Tenant, id, asOf)
		if err != nil {
			return err
		}
		if err := s.setLastEvent(c, last); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, ch)
	}
	s.awaitConsistency(c, "chart", "census", "orders")
	ch, err := chart.PatientChart(c.Request().Context(), s.deps.ReadModels, callerOf(c).Tenant, id)
	if err != nil {
		return err
	}
	c.Response().Header().Set(headerETag, strconv.Quote(strconv.FormatInt(ch.Version, 10)))
	return c.JSON(http.StatusOK, ch)
}

func (s *Server) patientObservations(c echo.Context) error {
	var q observationQuery
	if err := bindQuery(c, &q); err != nil {
		return err
	}
	params := observations.ObservationParams{Code: q.Code, Cursor: q.Cursor, Limit: q.Limit}
	var fields []chartstream.FieldError
	for _, t := range []struct {
		name, value string
		dst         *time.Time
	}{{"since", q.Since, &params.Since}, {"until", q.Until, &params.Until}} {
		if t.value == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, t.value)
		if err != nil {
			fields = append(fields, chartstream.FieldError{Field: t.name, Reason: "must be an RFC 3339 date-time"})
		}
		*t.dst = v
	}
	if len(fields) > 0 {
		return chartstream.Invalid(fields...)
	}
	return s.patientRead(c, []string{"observations"}, func(ctx context.Context, tenant chartstream.TenantID, id uuid.UUID) (any, error) {
		return observations.Observations(ctx, s.deps.ReadModels, tenant, id, params)
	})
}

func (s *Server) patientMedicationOrders(c echo.Context) error {
	var q orderQuery
	if err := bindQuery(c, &q); err != nil {
		return err
	}
	return s.patientRead(c, []string{"orders"}, func(ctx context.Context, tenant chartstream.TenantID, id uuid.UUID) (any, error) {
		return orders.MedicationOrders(ctx, s.deps.ReadModels, tenant, id, q.Status)
	})
}

func (s *Server) listEncounters(c echo.Context) error {
	var q encounterQuery
	if err := bindQuery(c, &q); err != nil {
		return err
	}
	s.awaitConsistency(c, "census")
	page, err := census.Encounters(c.Request().Context(), s.deps.ReadModels, callerOf(c).Tenant, census.EncounterParams{
		Status: q.Status, Location: q.Location, Cursor: q.Cursor, Limit: q.Limit,
	})
	if err != nil {
		return err
	}
	for _, e := range page.Items {
		accessed(c, e.PatientID)
	}
	return c.JSON(http.StatusOK, page)
}

// patientRead serves a read of one patient's records: 404 unless the
// patient is in the caller's tenant, so an empty list never hints that
// another tenant's patient exists.
func (s *Server) patientRead(c echo.Context, projectionNames []string, read func(context.Context, chartstream.TenantID, uuid.UUID) (any, error)) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	s.awaitConsistency(c, append(projectionNames, "chart")...)
	ctx, tenant := c.Request().Context(), callerOf(c).Tenant
	if _, err := chart.PatientChart(ctx, s.deps.ReadModels, tenant, id); err != nil {
		return err
	}
	v, err := read(ctx, tenant, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// HeaderConsistency says a read may not reflect the caller's last write.
const HeaderConsistency = "X-Consistency"

// awaitConsistency gives read-your-writes: with an X-Consistency-Token from
// a command, it waits (up to ConsistencyWait) until the named projections
// have applied that command's events. On timeout the read answers with what
// it has, marked X-Consistency: stale.
func (s *Server) awaitConsistency(c echo.Context, names ...string) {
	token := c.Request().Header.Get(HeaderConsistencyToken)
	if token == "" {
		return
	}
	event, err := ParseConsistencyToken(token)
	if err != nil {
		return // cannot happen: checkHeaders refused it
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.ConsistencyWait)
	defer cancel()
	tenant := callerOf(c).Tenant
	for {
		ok, err := projections.Reached(ctx, s.deps.ReadModels, tenant, names, event)
		if err == nil && ok {
			return
		}
		select {
		case <-ctx.Done():
			c.Response().Header().Set(HeaderConsistency, "stale")
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}
