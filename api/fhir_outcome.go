package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream/internal/logging"
)

// operationOutcome is a FHIR OperationOutcome: how the FHIR routes answer
// every error, with the status the problem+json mapping gives.
type operationOutcome struct {
	ResourceType string         `json:"resourceType"`
	Issue        []outcomeIssue `json:"issue"`
}

type outcomeIssue struct {
	Severity string `json:"severity"`
	Code     string `json:"code"`
	// Details codes the problem type (urn:chartstream:problem, the suffix
	// of the problem+json type URI), so clients switch on it alike.
	Details *fhirConcept `json:"details,omitempty"`
	// Diagnostics is PHI-free, as a problem's detail is.
	Diagnostics string `json:"diagnostics,omitempty"`
}

// problemSystem is the code system of chartstream's problem types.
const problemSystem = "urn:chartstream:problem"

// issueTypes maps problem types to FHIR issue types (IssueType value set).
var issueTypes = map[string]string{
	"invalid":            "invalid",
	"unauthorized":       "login",
	"forbidden":          "forbidden",
	"not-found":          "not-found",
	"conflict":           "conflict",
	"precondition":       "conflict",
	"too-large":          "too-long",
	"unsupported":        "not-supported",
	"unprocessable":      "business-rule",
	"rate-limited":       "throttled",
	"unavailable":        "transient",
	"method-not-allowed": "not-supported",
}

// fhirParamNames renames the read models' field errors to the FHIR search
// parameters they came from.
var fhirParamNames = map[string]string{
	"cursor": "_cursor", "limit": "_count", "birth_date": "birthdate", "since": "date", "until": "date",
}

// outcomeFor turns an error into an OperationOutcome and its status, by
// way of problemFor, so both renderings agree on status and wording.
func outcomeFor(err error, requestID string) (int, operationOutcome) {
	p := problemFor(err)
	kind := strings.TrimPrefix(p.Type, problemSystem+":")
	issue := outcomeIssue{Severity: "error", Code: issueTypes[kind], Diagnostics: p.Detail,
		Details: &fhirConcept{Coding: []fhirCoding{{System: problemSystem, Code: kind}}, Text: p.Title}}
	if issue.Code == "" {
		issue.Code = "exception"
	}
	if p.Status >= http.StatusInternalServerError {
		issue.Severity, issue.Diagnostics = "fatal", p.Detail+"; request id "+requestID
	}
	o := operationOutcome{ResourceType: "OperationOutcome", Issue: []outcomeIssue{issue}}
	for _, f := range p.Errors {
		name := f.Field
		if n, ok := fhirParamNames[name]; ok {
			name = n
		}
		o.Issue = append(o.Issue, outcomeIssue{Severity: "error", Code: "invalid", Diagnostics: name + ": " + f.Reason})
	}
	return p.Status, o
}

// fhirOutcomes renders the errors of requests under /fhir/R4 as
// OperationOutcomes: a FHIR client must never get problem+json. It wraps
// the whole chain on the Echo instance, outside panic recovery, rather than
// the /fhir group: the router's own 404 and 405 and recovered panics never
// pass through group middleware. It writes the response itself and leaves
// the shared HTTPErrorHandler, and every other path, alone.
func (s *Server) fhirOutcomes(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if path := c.Request().URL.Path; path != fhirBase && !strings.HasPrefix(path, fhirBase+"/") {
			return next(c)
		}
		err := next(c)
		if err == nil || c.Response().Committed {
			return err
		}
		ctx := c.Request().Context()
		status, o := outcomeFor(err, logging.RequestID(ctx))
		if status >= http.StatusInternalServerError {
			// The error may wrap driver messages; it goes to the log only.
			s.deps.Logger.ErrorContext(ctx, "request failed", "status", status, "route", c.Path(), logging.Error(err))
		}
		if werr := writeFHIR(c, status, o); werr != nil {
			s.deps.Logger.ErrorContext(ctx, "write error response", "error", werr)
		}
		return nil
	}
}

// writeFHIR answers v as FHIR JSON.
func writeFHIR(c echo.Context, status int, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode FHIR response: %w", err)
	}
	return c.Blob(status, FHIRContentType, raw)
}
