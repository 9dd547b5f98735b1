package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/projections/analytics"
)

// AnalyticsReader reads the analytics tables on the hot standby
// (analytics.Reader). It never reads the primary.
type AnalyticsReader interface {
	Census(ctx context.Context, tenant chartstream.TenantID, r analytics.Range, location string) (analytics.Answer[analytics.CensusRow], analytics.Lag, error)
	Observations(ctx context.Context, tenant chartstream.TenantID, r analytics.Range, code string) (analytics.Answer[analytics.ObservationRow], analytics.Lag, error)
	Medications(ctx context.Context, tenant chartstream.TenantID, r analytics.Range) (analytics.Answer[analytics.MedicationRow], analytics.Lag, error)
	RetryAfter(analytics.Lag) time.Duration
}

// HeaderReplicaLag is how far, in milliseconds, the standby an analytics
// answer was read from was behind the primary.
const HeaderReplicaLag = "X-Replica-Lag-Ms"

// Query parameters of the analytics routes, for the OpenAPI document.
type (
	censusQuery struct {
		From     string `query:"from" format:"date" maxLength:"10" description:"first day (UTC), default 29 days before to"`
		To       string `query:"to" format:"date" maxLength:"10" description:"last day (UTC), default today; at most 366 days after from"`
		Location string `query:"location" maxLength:"200" description:"one location; default every location"`
	}
	analyticsObservationQuery struct {
		Code string `query:"code" maxLength:"64" description:"one LOINC code; default every code"`
		From string `query:"from" format:"date" maxLength:"10" description:"first day (UTC), default 29 days before to"`
		To   string `query:"to" format:"date" maxLength:"10" description:"last day (UTC), default today; at most 366 days after from"`
	}
	analyticsMedicationQuery struct {
		From string `query:"from" format:"date" maxLength:"10" description:"first day (UTC), default 29 days before to"`
		To   string `query:"to" format:"date" maxLength:"10" description:"last day (UTC), default today; at most 366 days after from"`
	}
)

// analysts read the analytics, and nothing else.
var analysts = []chartstream.Role{chartstream.RoleAnalyst}

// analyticsRoutes are the aggregate reads, served from the hot standby.
func (s *Server) analyticsRoutes() []route {
	return []route{
		{Method: http.MethodGet, Path: "/v1/analytics/census", Summary: "Daily census per location (aggregates, small cells suppressed)", Roles: analysts,
			Query: new(censusQuery), Response: new(analytics.Answer[analytics.CensusRow]), PHI: noPHI, Handle: s.analyticsCensus},
		{Method: http.MethodGet, Path: "/v1/analytics/observations", Summary: "Observations per LOINC code and day (aggregates, small cells suppressed)", Roles: analysts,
			Query: new(analyticsObservationQuery), Response: new(analytics.Answer[analytics.ObservationRow]), PHI: noPHI, Handle: s.analyticsObservations},
		{Method: http.MethodGet, Path: "/v1/analytics/medications", Summary: "Medication orders per RxNorm code and day (aggregates, small cells suppressed)", Roles: analysts,
			Query: new(analyticsMedicationQuery), Response: new(analytics.Answer[analytics.MedicationRow]), PHI: noPHI, Handle: s.analyticsMedications},
	}
}

func (s *Server) analyticsCensus(c echo.Context) error {
	var q censusQuery
	rg, err := analyticsInput(c, &q, &q.From, &q.To, func() error { return analytics.CheckLocation(q.Location) })
	if err != nil {
		return err
	}
	return s.serveAnalytics(c, func(ctx context.Context, tenant chartstream.TenantID) (any, analytics.Lag, error) {
		return s.deps.Analytics.Census(ctx, tenant, rg, q.Location)
	})
}

func (s *Server) analyticsObservations(c echo.Context) error {
	var q analyticsObservationQuery
	rg, err := analyticsInput(c, &q, &q.From, &q.To, func() error { return analytics.CheckCode(q.Code) })
	if err != nil {
		return err
	}
	return s.serveAnalytics(c, func(ctx context.Context, tenant chartstream.TenantID) (any, analytics.Lag, error) {
		return s.deps.Analytics.Observations(ctx, tenant, rg, q.Code)
	})
}

func (s *Server) analyticsMedications(c echo.Context) error {
	var q analyticsMedicationQuery
	rg, err := analyticsInput(c, &q, &q.From, &q.To, func() error { return nil })
	if err != nil {
		return err
	}
	return s.serveAnalytics(c, func(ctx context.Context, tenant chartstream.TenantID) (any, analytics.Lag, error) {
		return s.deps.Analytics.Medications(ctx, tenant, rg)
	})
}

// analyticsInput binds an analytics request's query into q strictly
// (bindQuery: unknown, repeated, empty or overlong parameters are refused)
// and checks the range (analytics.ParseRange) and the route's filter.
// Every problem with the range and the filter is reported at once, naming
// the parameter, never its value.
func analyticsInput(c echo.Context, q any, from, to *string, filter func() error) (analytics.Range, error) {
	if err := bindQuery(c, q); err != nil {
		return analytics.Range{}, err
	}
	rg, err := analytics.ParseRange(*from, *to, time.Now())
	var fields []chartstream.FieldError
	for _, e := range []error{err, filter()} {
		var invalid *chartstream.Error
		if errors.As(e, &invalid) {
			fields = append(fields, invalid.Fields...)
		}
	}
	if len(fields) > 0 {
		return rg, chartstream.Invalid(fields...)
	}
	return rg, nil
}

// serveAnalytics answers an analytics read with its rows and the standby's
// lag (X-Replica-Lag-Ms, on every answer the standby gave: also a 503 for
// too much lag). A standby that is down, lags too much, or is not
// configured is 503 with Retry-After; the primary is never read instead.
func (s *Server) serveAnalytics(c echo.Context, read func(context.Context, chartstream.TenantID) (any, analytics.Lag, error)) error {
	if s.deps.Analytics == nil {
		return chartstream.Errorf(chartstream.EUNAVAILABLE, "no analytics replica is configured (DATABASE_REPLICA_URL)")
	}
	answer, lag, err := read(c.Request().Context(), callerOf(c).Tenant)
	if lag.Known {
		c.Response().Header().Set(HeaderReplicaLag, strconv.FormatInt(lag.Millis(), 10))
	}
	if err != nil {
		if chartstream.ErrorCode(err) == chartstream.EUNAVAILABLE {
			c.Response().Header().Set(echo.HeaderRetryAfter, strconv.Itoa(int(s.deps.Analytics.RetryAfter(lag).Seconds())))
		}
		return err
	}
	return c.JSON(http.StatusOK, answer)
}
