package api

import (
	"net/http"
	"reflect"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/swaggest/openapi-go"
	"github.com/swaggest/openapi-go/openapi31"

	"github.com/chartstream/chartstream"
)

// route is one API operation. The route table is the single source of the
// API's shape: it registers the handlers, generates the OpenAPI document,
// and drives the generated cross-tenant tests, so none can drift.
type route struct {
	Method string
	// Path is Echo's form, with :params.
	Path    string
	Summary string
	// Roles may call the route; a caller needs any one of them.
	Roles []chartstream.Role
	// Request is a pointer to the body type, nil for routes without one
	// (they take an empty body or {}, nothing else).
	Request any
	// RequestType is the body's media type, "" for JSON.
	RequestType string
	// Read marks a route that changes nothing although its method is not
	// GET (a search by POST, keeping PHI out of URLs): it takes the
	// readers' roles and no Idempotency-Key, and records nothing.
	Read bool
	// Query is a pointer to a struct of query parameters, for the document;
	// nil for routes that take none (they refuse any).
	Query any
	// Response is a pointer to the success body type; nil for commands
	// (CommandResult).
	Response any
	// OptionalBody lets the body be empty.
	OptionalBody bool
	// Created marks creations: 201 with a Location.
	Created bool
	// Example is a valid body, for the document and the tests.
	Example any
	// ContentType is the success response's media type, "" for JSON. With
	// FHIRContentType the errors are OperationOutcomes too.
	ContentType string
	// Public routes need no token (and name no roles).
	Public bool
	Handle echo.HandlerFunc
}

// command reports whether the route runs a command: an unsafe method
// that is not a read.
func (r route) command() bool { return r.Method != http.MethodGet && !r.Read }

// register adds the routes under prefix to g, each behind its role check,
// and commands then behind idempotent: a replay is for callers the route
// admits, never before the role check.
func register(g *echo.Group, prefix string, routes []route, idempotent echo.MiddlewareFunc) {
	for _, r := range routes {
		if path, ok := strings.CutPrefix(r.Path, prefix+"/"); ok {
			mw := []echo.MiddlewareFunc{requireRoles(r.Roles...)}
			if r.command() {
				mw = append(mw, idempotent)
			}
			g.Add(r.Method, "/"+path, r.Handle, mw...)
		}
	}
}

// openAPIPath turns /v1/patients/:id into /v1/patients/{id}.
func openAPIPath(p string) (string, []string) {
	var params []string
	parts := strings.Split(p, "/")
	for i, part := range parts {
		if name, ok := strings.CutPrefix(part, ":"); ok {
			parts[i] = "{" + name + "}"
			params = append(params, name)
		}
	}
	return strings.Join(parts, "/"), params
}

// problemStatuses are the error responses every command may give.
var problemStatuses = []int{
	http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
	http.StatusConflict, http.StatusPreconditionFailed, http.StatusRequestEntityTooLarge,
	http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity, http.StatusTooManyRequests,
	http.StatusServiceUnavailable,
}

// inputRules are the limits every input is held to, for the document; the
// fields' own maxLength and maxItems are lower.
const inputRules = "Input is taken exactly as sent or refused with 400 naming the field, never repaired: " +
	"bodies at most 1 MiB, one JSON value in UTF-8 with no member name twice, nesting at most 32 levels, " +
	"strings at most 1,000 characters and arrays at most 100 items unless a field says less, no unknown fields. " +
	"Query parameters, path ids and the headers the API reads are UTF-8, given once, and at most their documented length."

// openAPIDocument generates the OpenAPI 3.1 document from the route table.
func openAPIDocument(routes []route) ([]byte, error) {
	r := openapi31.NewReflector()
	r.Spec.Info.WithTitle("chartstream clinical API").WithVersion("1").
		WithDescription("Commands clinicians send and the reads they make. Errors are RFC 9457 application/problem+json, " +
			"except under /fhir/R4, where responses and errors are FHIR R4 JSON (OperationOutcome). " + inputRules)
	r.Spec.SetHTTPBearerTokenSecurity("bearer", "JWT", "OAuth 2.0 bearer token carrying the tenant")
	for _, rt := range routes {
		path, params := openAPIPath(rt.Path)
		op, err := r.NewOperationContext(rt.Method, path)
		if err != nil {
			return nil, err
		}
		op.SetSummary(rt.Summary)
		if rt.Public {
			op.SetDescription("Public: no token needed")
		} else {
			op.SetDescription("Roles: " + rolesText(rt.Roles))
			op.AddSecurity("bearer")
		}
		op.AddReqStructure(pathParams(params))
		if rt.Request != nil {
			ct := rt.RequestType
			if ct == "" {
				ct = echo.MIMEApplicationJSON
			}
			op.AddReqStructure(rt.Request, openapi.WithContentType(ct))
		}
		if rt.Query != nil {
			op.AddReqStructure(rt.Query)
		}
		status, resp := http.StatusOK, rt.Response
		if rt.Created {
			status = http.StatusCreated
		}
		if resp == nil {
			resp = new(chartstream.CommandResult)
		}
		errBody, errType := any(new(Problem)), ProblemContentType
		if rt.ContentType == FHIRContentType {
			errBody, errType = new(operationOutcome), FHIRContentType
		}
		if rt.ContentType != "" {
			op.AddRespStructure(resp, openapi.WithHTTPStatus(status), openapi.WithContentType(rt.ContentType))
		} else {
			op.AddRespStructure(resp, openapi.WithHTTPStatus(status))
		}
		for _, s := range problemStatuses {
			op.AddRespStructure(errBody, openapi.WithHTTPStatus(s), openapi.WithContentType(errType))
		}
		if err := r.AddOperation(op); err != nil {
			return nil, err
		}
	}
	return r.Spec.MarshalJSON()
}

// pathParams builds a struct type whose fields are the route's path
// parameters, each a UUID, for the reflector.
func pathParams(names []string) any {
	fields := make([]reflect.StructField, len(names))
	for i, n := range names {
		fields[i] = reflect.StructField{
			Name: "P" + strings.ToUpper(n[:1]) + n[1:],
			Type: reflect.TypeOf(""),
			Tag:  reflect.StructTag(`path:"` + n + `" format:"uuid" required:"true"`),
		}
	}
	return reflect.New(reflect.StructOf(fields)).Interface()
}

func rolesText(roles []chartstream.Role) string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}
