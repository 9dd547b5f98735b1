package api

import "github.com/chartstream/chartstream"

// RouteInfo exposes the route table to the black-box tests, which generate
// their cross-tenant and OpenAPI checks from it.
type RouteInfo struct {
	Method, Path string
	Roles        []chartstream.Role
	Example      any
	Created      bool
	// Read is true for routes that change nothing (GETs, POST searches).
	Read bool
	// Request is a new value of the body type, nil without one;
	// RequestType its media type, "" for JSON.
	Request     any
	RequestType string
	// FHIR routes answer with FHIR JSON.
	FHIR bool
}

// RouteTable returns the server's clinical routes.
func (s *Server) RouteTable() []RouteInfo {
	out := make([]RouteInfo, len(s.routes))
	for i, r := range s.routes {
		out[i] = RouteInfo{Method: r.Method, Path: r.Path, Roles: r.Roles, Example: r.Example, Created: r.Created,
			Read: !r.command(), Request: r.Request, RequestType: r.RequestType, FHIR: r.ContentType == FHIRContentType}
	}
	return out
}
