package api

import "github.com/chartstream/chartstream"

// RouteInfo exposes the route table to the black-box tests, which generate
// their cross-tenant and OpenAPI checks from it.
type RouteInfo struct {
	Method, Path string
	Roles        []chartstream.Role
	Example      any
	Created      bool
}

// RouteTable returns the server's clinical routes.
func (s *Server) RouteTable() []RouteInfo {
	out := make([]RouteInfo, len(s.routes))
	for i, r := range s.routes {
		out[i] = RouteInfo{Method: r.Method, Path: r.Path, Roles: r.Roles, Example: r.Example, Created: r.Created}
	}
	return out
}
