package api

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"slices"
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
		MRN       string `query:"mrn" description:"exact medical record number"`
		Name      string `query:"name" description:"prefix or similar spelling, ignoring case and accents"`
		BirthDate string `query:"birth_date" format:"date"`
		Cursor    string `query:"cursor"`
		Limit     int    `query:"limit" minimum:"1" maximum:"200"`
	}
	observationQuery struct {
		Code   string `query:"code" description:"LOINC code"`
		Since  string `query:"since" format:"date-time"`
		Until  string `query:"until" format:"date-time"`
		Cursor string `query:"cursor"`
		Limit  int    `query:"limit" minimum:"1" maximum:"200"`
	}
	encounterQuery struct {
		Status   string `query:"status" enum:"in-progress,finished"`
		Location string `query:"location"`
		Cursor   string `query:"cursor"`
		Limit    int    `query:"limit" minimum:"1" maximum:"200"`
	}
	orderQuery struct {
		Status string `query:"status" enum:"active,stopped"`
	}
)

// readers may read charts: the care team and auditors.
var readers = []chartstream.Role{chartstream.RoleClinician, chartstream.RoleNurse, chartstream.RoleAuditor}

// queryRoutes are the clinician's reads, served from the read models.
func (s *Server) queryRoutes() []route {
	return []route{
		{Method: http.MethodGet, Path: "/v1/patients", Summary: "Search patients", Roles: readers,
			Query: new(patientSearchQuery), Response: new(projections.Page[chart.PatientSummary]), Handle: s.searchPatients},
		{Method: http.MethodGet, Path: "/v1/patients/:id", Summary: "A patient's chart", Roles: readers,
			Response: new(chart.Chart), Handle: s.patientChart},
		{Method: http.MethodGet, Path: "/v1/patients/:id/observations", Summary: "A patient's observations over time", Roles: readers,
			Query: new(observationQuery), Response: new(projections.Page[observations.Observation]), Handle: s.patientObservations},
		{Method: http.MethodGet, Path: "/v1/patients/:id/medication-orders", Summary: "A patient's medication orders", Roles: readers,
			Query: new(orderQuery), Response: new([]orders.MedicationOrder), Handle: s.patientMedicationOrders},
		{Method: http.MethodGet, Path: "/v1/encounters", Summary: "Encounters, e.g. the census of a location", Roles: readers,
			Query: new(encounterQuery), Response: new(projections.Page[census.Encounter]), Handle: s.listEncounters},
	}
}

func (s *Server) searchPatients(c echo.Context) error {
	var q patientSearchQuery
	if err := bindQuery(c, &q); err != nil {
		return err
	}
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
	return c.JSON(http.StatusOK, page)
}

func (s *Server) patientChart(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
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

// queryNameProblems checks a query's parameter names: each in allowed
// (unknown ones are refused with the reason given, not ignored: a
// misspelled filter must not silently widen a read) and given once, except
// repeatable ("" for none). An unknown name is shown only when it looks
// like one of the API's own (lowercase ASCII and _): it could be anything
// a client typed.
func queryNameProblems(q url.Values, allowed []string, repeatable, unknown string) []chartstream.FieldError {
	var fields []chartstream.FieldError
	for _, name := range slices.Sorted(maps.Keys(q)) {
		switch {
		case !slices.Contains(allowed, name):
			fields = append(fields, chartstream.FieldError{Field: plainName(name), Reason: unknown})
		case len(q[name]) > 1 && name != repeatable:
			fields = append(fields, chartstream.FieldError{Field: name, Reason: "must be given once"})
		}
	}
	return fields
}

// plainName is a parameter's name as an error may show it, or "?".
func plainName(name string) string {
	if name == "" || len(name) > 32 {
		return "?"
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && r != '_' {
			return "?"
		}
	}
	return name
}

// bindQuery binds query parameters, refusing unknown ones and malformed
// numbers with field errors.
func bindQuery(c echo.Context, dst any) error {
	if err := (&echo.DefaultBinder{}).BindQueryParams(c, dst); err != nil {
		return chartstream.Errorf(chartstream.EINVALID, "malformed query parameters")
	}
	if limit := c.QueryParam("limit"); limit != "" {
		if n, err := strconv.Atoi(limit); err != nil || n < 1 || n > projections.MaxLimit {
			return chartstream.Invalid(chartstream.FieldError{Field: "limit", Reason: "must be 1 to 200"})
		}
	}
	return nil
}

// HeaderConsistency says a read may not reflect the caller's last write.
const HeaderConsistency = "X-Consistency"

// awaitConsistency gives read-your-writes: with an X-Consistency-Token from
// a command, it waits (up to ConsistencyWait) until the named projections
// have applied that command's events. On timeout the read answers with what
// it has, marked X-Consistency: stale. A malformed token is ignored.
func (s *Server) awaitConsistency(c echo.Context, names ...string) {
	token := c.Request().Header.Get(HeaderConsistencyToken)
	if token == "" {
		return
	}
	position, err := ParseConsistencyToken(token)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.ConsistencyWait)
	defer cancel()
	tenant := callerOf(c).Tenant
	for {
		ok, err := projections.Reached(ctx, s.deps.ReadModels, tenant, names, position)
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
