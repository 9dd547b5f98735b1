package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// asyncAPIDocument is the schema of /asyncapi.json for the OpenAPI document:
// any JSON object (its own schema is AsyncAPI 3.0's).
type asyncAPIDocument map[string]any

// docRoutes are the public documents beside /openapi.json: the AsyncAPI
// document of the event streams, which describes event types, never a
// tenant's data.
func (s *Server) docRoutes() []route {
	if s.deps.AsyncAPI == nil {
		return nil
	}
	return []route{{Method: http.MethodGet, Path: "/asyncapi.json", Summary: "AsyncAPI 3.0 document of the clinical and de-identified event streams (no token needed)",
		Public: true, Response: new(asyncAPIDocument), PHI: noPHI, Handle: func(c echo.Context) error {
			return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, s.deps.AsyncAPI)
		}}}
}
