package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/internal/asyncapi"
	"github.com/chartstream/chartstream/internal/deid"
)

// TestOpenAPIDocumentMatchesRoutes keeps /openapi.json honest: every
// registered /v1 and /fhir route is in the document and the document has
// nothing else (but the public /asyncapi.json), with its methods, path parameters and error responses.
func TestOpenAPIDocumentMatchesRoutes(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	r := e.do(http.MethodGet, "/openapi.json", "", nil).want(t, http.StatusOK)
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			Parameters []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
			Responses map[string]any `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(r.Raw, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi %q, want 3.1", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
			inPath := 0
			for _, p := range op.Parameters {
				if p.In == "path" {
					inPath++
				}
			}
			if want := strings.Count(path, "{"); inPath != want {
				t.Errorf("%s %s documents %d path parameters, want %d", method, path, inPath, want)
			}
			for _, status := range []string{"400", "401", "403", "404", "409", "422", "429"} {
				if op.Responses[status] == nil {
					t.Errorf("%s %s does not document %s", method, path, status)
				}
			}
		}
	}
	var registered []string
	for _, rt := range e.server.Handler().(*echo.Echo).Routes() {
		if (strings.HasPrefix(rt.Path, "/v1/") || strings.HasPrefix(rt.Path, "/fhir/") || rt.Path == "/asyncapi.json") && rt.Method != echo.RouteNotFound {
			path := rt.Path
			for _, part := range strings.Split(rt.Path, "/") {
				if name, ok := strings.CutPrefix(part, ":"); ok {
					path = strings.Replace(path, part, "{"+name+"}", 1)
				}
			}
			registered = append(registered, rt.Method+" "+path)
		}
	}
	slices.Sort(documented)
	slices.Sort(registered)
	if len(registered) == 0 || !slices.Equal(documented, registered) {
		t.Errorf("documented routes\n%v\ndiffer from registered routes\n%v", documented, registered)
	}
}

// mustAsyncAPI is the AsyncAPI document of the clinical event types.
func mustAsyncAPI(t *testing.T) []byte {
	t.Helper()
	rules, err := deid.New(commands.EventSpecs(), deid.Config{})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := asyncapi.Document(commands.EventSpecs(), rules, asyncapi.DefaultStreams)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// /asyncapi.json needs no token, like /openapi.json: it describes event
// types, never a tenant's data.
func TestAsyncAPIDocumentIsPublic(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	r := e.do(http.MethodGet, "/asyncapi.json", "", nil).want(t, http.StatusOK)
	var doc struct {
		AsyncAPI string         `json:"asyncapi"`
		Channels map[string]any `json:"channels"`
	}
	if err := json.Unmarshal(r.Raw, &doc); err != nil || doc.AsyncAPI != "3.0.0" || len(doc.Channels) != 2 {
		t.Errorf("/asyncapi.json: %.200s (%v)", r.Raw, err)
	}
}
