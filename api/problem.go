package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/postgres"
)

// Problem is an RFC 9457 problem details body (application/problem+json).
type Problem struct {
	// Type is a stable URI naming the kind of problem; clients switch on it.
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	// Detail is PHI-free: it never echoes a submitted value.
	Detail    string                   `json:"detail,omitempty"`
	Instance  string                   `json:"instance,omitempty"`
	RequestID string                   `json:"request_id,omitempty"`
	Errors    []chartstream.FieldError `json:"errors,omitempty"`
}

// ProblemContentType is the media type of error responses.
const ProblemContentType = "application/problem+json"

// problemTypes maps each error code to its HTTP status and title. A code
// missing here is a bug and renders as 500.
var problemTypes = map[string]struct {
	status int
	title  string
}{
	chartstream.EINVALID:       {http.StatusBadRequest, "Invalid request"},
	chartstream.EUNAUTHORIZED:  {http.StatusUnauthorized, "Unauthorized"},
	chartstream.EFORBIDDEN:     {http.StatusForbidden, "Forbidden"},
	chartstream.ENOTFOUND:      {http.StatusNotFound, "Not found"},
	chartstream.ECONFLICT:      {http.StatusConflict, "Conflict"},
	chartstream.EPRECONDITION:  {http.StatusPreconditionFailed, "Precondition failed"},
	chartstream.ETOOLARGE:      {http.StatusRequestEntityTooLarge, "Request too large"},
	chartstream.EUNSUPPORTED:   {http.StatusUnsupportedMediaType, "Unsupported media type"},
	chartstream.EUNPROCESSABLE: {http.StatusUnprocessableEntity, "Domain rule violated"},
	chartstream.ERATELIMITED:   {http.StatusTooManyRequests, "Too many requests"},
	chartstream.EUNAVAILABLE:   {http.StatusServiceUnavailable, "Service unavailable"},
	chartstream.ECOMMITUNKNOWN: {http.StatusServiceUnavailable, "Commit outcome unknown"},
	chartstream.EINTERNAL:      {http.StatusInternalServerError, "Internal error"},
	codeMethodNotAllowed:       {http.StatusMethodNotAllowed, "Method not allowed"},
}

// codeMethodNotAllowed exists only at the HTTP layer.
const codeMethodNotAllowed = "method_not_allowed"

// ProblemType returns the stable type URI for an error code.
func ProblemType(code string) string {
	return "urn:chartstream:problem:" + strings.ReplaceAll(code, "_", "-")
}

// problemFor turns any error into a Problem. Only *chartstream.Error and
// *echo.HTTPError carry a message a caller may see; anything else is an
// internal error whose details go to the log, never to the response.
func problemFor(err error) Problem {
	code, detail := chartstream.ErrorCode(err), chartstream.ErrorMessage(err)
	var fields []chartstream.FieldError
	var domainErr *chartstream.Error
	var httpErr *echo.HTTPError
	switch {
	case errors.As(err, &domainErr):
		fields = domainErr.Fields
	case errors.As(err, &httpErr):
		code, detail = httpCode(httpErr.Code), http.StatusText(httpErr.Code)
	case postgres.Unavailable(err):
		code, detail = chartstream.EUNAVAILABLE, "a dependency is unavailable; retry later"
	case errors.Is(err, context.DeadlineExceeded):
		code, detail = chartstream.EUNAVAILABLE, "the request did not finish within its deadline; retry later"
	}
	pt, ok := problemTypes[code]
	if !ok || code == chartstream.EINTERNAL {
		code, pt, detail, fields = chartstream.EINTERNAL, problemTypes[chartstream.EINTERNAL], "internal error", nil
	}
	return Problem{Type: ProblemType(code), Title: pt.title, Status: pt.status, Detail: detail, Errors: fields}
}

// httpCode maps the statuses Echo itself produces (routing, body limit) to
// error codes.
func httpCode(status int) string {
	switch status {
	case http.StatusNotFound:
		return chartstream.ENOTFOUND
	case http.StatusMethodNotAllowed:
		return codeMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return chartstream.ETOOLARGE
	case http.StatusUnsupportedMediaType:
		return chartstream.EUNSUPPORTED
	case http.StatusUnauthorized:
		return chartstream.EUNAUTHORIZED
	case http.StatusForbidden:
		return chartstream.EFORBIDDEN
	case http.StatusTooManyRequests:
		return chartstream.ERATELIMITED
	case http.StatusServiceUnavailable:
		return chartstream.EUNAVAILABLE
	}
	if status >= 400 && status < 500 {
		return chartstream.EINVALID
	}
	return chartstream.EINTERNAL
}

// errorHandler is the one place errors become responses.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		ctx := c.Request().Context()
		p := problemFor(err)
		p.Instance = c.Request().URL.Path
		p.RequestID = logging.RequestID(ctx)
		if p.Status >= 500 {
			// A 503 is logged too: it is how an outage shows.
			// The error may wrap driver messages; it goes to the log only.
			log.ErrorContext(ctx, "request failed", "status", p.Status, "route", c.Path(), logging.Error(err))
		}
		c.Response().Header().Set(echo.HeaderContentType, ProblemContentType)
		if p.Status == http.StatusServiceUnavailable && c.Response().Header().Get(echo.HeaderRetryAfter) == "" {
			// A dependency is down or a commit's outcome is still
			// unknown: either is worth a retry shortly.
			c.Response().Header().Set(echo.HeaderRetryAfter, "1")
		}
		if c.Request().Method == http.MethodHead {
			err = c.NoContent(p.Status)
		} else {
			err = c.JSON(p.Status, p)
		}
		if err != nil {
			log.ErrorContext(ctx, "write error response", logging.Error(err))
		}
	}
}
