package api

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

// FHIRContentType is the media type of every FHIR response, errors
// included.
const FHIRContentType = "application/fhir+json; fhirVersion=4.0"

// fhirBase is the FHIR R4 base path; a FHIR client's base URL ends in it.
const fhirBase = "/fhir/R4"

// fhirSearchParam is a search parameter a FHIR route takes.
type fhirSearchParam struct {
	Name          string `json:"name"`
	Type          string `json:"type"`
	Documentation string `json:"documentation,omitempty"`
}

// fhirSearches are the searchable resource types and their parameters: the
// CapabilityStatement lists them and the handlers refuse any other (besides
// the paging parameters), so the two cannot disagree.
var fhirSearches = []struct {
	Type   string
	Read   bool // the type has a read by id (fhir_read.go)
	Params []fhirSearchParam
}{
	{"Patient", true, []fhirSearchParam{
		{"identifier", "token", "medical record number, system " + mrnSystem},
		{"name", "string", "prefix of a given or family name, or a similar spelling, ignoring case and accents"},
		{"birthdate", "date", "a day, without prefix or with eq"},
	}},
	{"Observation", true, []fhirSearchParam{
		{"patient", "reference", "required"},
		{"code", "token", "LOINC code, system " + loincSystem},
		{"date", "date", "effective time, prefixes eq (or none), ge, gt, le, lt; repeat to bound both ends"},
	}},
	{"Encounter", true, []fhirSearchParam{
		{"patient", "reference", "optional: every encounter of the tenant without it"},
		{"status", "token", "in-progress or finished"},
	}},
	{"MedicationRequest", true, []fhirSearchParam{
		{"patient", "reference", "required"},
		{"status", "token", "active or stopped"},
	}},
	{"AllergyIntolerance", true, []fhirSearchParam{{"patient", "reference", "required; active allergies"}}},
	{"Condition", true, []fhirSearchParam{{"patient", "reference", "required; active conditions"}}},
}

// Paging parameters of every search: _cursor is the opaque position a next
// link carries, _count the page size (1 to 200, default 50).
const (
	paramCursor = "_cursor"
	paramCount  = "_count"
)

// Query parameters of the FHIR searches, for the OpenAPI document.
type (
	fhirPaging struct {
		Cursor string `query:"_cursor" description:"opaque; follow the Bundle's next link"`
		Count  int    `query:"_count" minimum:"1" maximum:"200"`
	}
	fhirPatientQuery struct {
		Identifier string `query:"identifier" description:"[urn:chartstream:mrn|]MRN"`
		Name       string `query:"name"`
		BirthDate  string `query:"birthdate" description:"[eq]YYYY-MM-DD"`
		fhirPaging
	}
	// fhirPatientForm is the form body of POST Patient/_search: the
	// parameters of GET Patient, out of the URL.
	fhirPatientForm struct {
		Identifier string `formData:"identifier" description:"[urn:chartstream:mrn|]MRN"`
		Name       string `formData:"name"`
		BirthDate  string `formData:"birthdate" description:"[eq]YYYY-MM-DD"`
		Cursor     string `formData:"_cursor" description:"opaque; from the Bundle's next link"`
		Count      int    `formData:"_count" minimum:"1" maximum:"200"`
	}
	fhirObservationQuery struct {
		Patient string   `query:"patient" required:"true" description:"[Patient/]id"`
		Code    string   `query:"code" description:"[http://loinc.org|]code"`
		Date    []string `query:"date" description:"[eq|ge|gt|le|lt]date or date-time"`
		fhirPaging
	}
	fhirEncounterQuery struct {
		Patient string `query:"patient" description:"[Patient/]id"`
		Status  string `query:"status" enum:"in-progress,finished"`
		fhirPaging
	}
	fhirMedicationRequestQuery struct {
		Patient string `query:"patient" required:"true" description:"[Patient/]id"`
		Status  string `query:"status" enum:"active,stopped"`
		fhirPaging
	}
	fhirPatientOnlyQuery struct {
		Patient string `query:"patient" required:"true" description:"[Patient/]id"`
		fhirPaging
	}
)

// fhirRoutes are the FHIR R4 reads, behind the same authentication, roles
// and rate limits as the JSON reads.
func (s *Server) fhirRoutes() []route {
	get := func(path, summary string, query, response any, h echo.HandlerFunc) route {
		phi := namedPHI
		if path == "/Patient/:id" {
			phi = patientPHI
		}
		return route{Method: http.MethodGet, Path: fhirBase + path, Summary: "FHIR: " + summary, Roles: readers,
			Query: query, Response: response, ContentType: FHIRContentType, PHI: phi, Handle: h}
	}
	return []route{
		get("/Patient/:id", "read a Patient", nil, new(fhirPatient), s.fhirReadPatient),
		get("/Patient", "search Patients (prefer POST Patient/_search: PHI stays out of URLs)", new(fhirPatientQuery), new(fhirBundle), s.fhirSearchPatients),
		{Method: http.MethodPost, Path: fhirBase + "/Patient/_search", Summary: "FHIR: search Patients, the parameters in a form body",
			Roles: readers, Read: true, Request: new(fhirPatientForm), RequestType: echo.MIMEApplicationForm, OptionalBody: true,
			Response: new(fhirBundle), ContentType: FHIRContentType, PHI: namedPHI, Handle: s.fhirSearchPatients,
			Example: url.Values{"name": {"lovelace"}, paramCount: {"20"}}},
		get("/Observation", "search a patient's Observations, newest first", new(fhirObservationQuery), new(fhirBundle), s.fhirSearchObservations),
		get("/Encounter", "search Encounters", new(fhirEncounterQuery), new(fhirBundle), s.fhirSearchEncounters),
		get("/MedicationRequest", "search a patient's MedicationRequests", new(fhirMedicationRequestQuery), new(fhirBundle), s.fhirSearchMedicationRequests),
		get("/AllergyIntolerance", "search a patient's active AllergyIntolerances", new(fhirPatientOnlyQuery), new(fhirBundle), s.fhirSearchAllergies),
		get("/Condition", "search a patient's active Conditions", new(fhirPatientOnlyQuery), new(fhirBundle), s.fhirSearchConditions),
	}
}

// fhirPublicRoutes need no token: FHIR clients fetch the
// CapabilityStatement before anything else, to learn how to authenticate,
// and it says nothing about any tenant.
func (s *Server) fhirPublicRoutes() []route {
	return []route{{Method: http.MethodGet, Path: fhirBase + "/metadata", Summary: "FHIR: CapabilityStatement (no token needed)",
		Public: true, Response: new(capabilityStatement), ContentType: FHIRContentType, PHI: noPHI, Handle: s.fhirMetadata}}
}

// registerFHIR serves the FHIR routes; their errors become OperationOutcomes
// in fhirOutcomes, which the caller installs on the Echo instance.
func (s *Server) registerFHIR(routes, public []route) {
	for _, r := range public {
		s.echo.Add(r.Method, r.Path, r.Handle)
	}
	s.register(s.echo.Group(fhirBase, s.authenticate, s.limit), fhirBase, routes)
}

// capabilityStatement is what the FHIR API does, for /metadata.
type capabilityStatement struct {
	ResourceType   string `json:"resourceType"`
	Status         string `json:"status"`
	Date           string `json:"date"`
	Kind           string `json:"kind"`
	Implementation struct {
		Description string `json:"description"`
	} `json:"implementation"`
	FHIRVersion string           `json:"fhirVersion"`
	Format      []string         `json:"format"`
	Rest        []capabilityRest `json:"rest"`
}

type capabilityRest struct {
	Mode     string `json:"mode"`
	Security struct {
		Service     []fhirConcept `json:"service"`
		Description string        `json:"description"`
	} `json:"security"`
	Resource []capabilityResource `json:"resource"`
}

type capabilityResource struct {
	Type        string              `json:"type"`
	Interaction []map[string]string `json:"interaction"`
	SearchParam []fhirSearchParam   `json:"searchParam"`
}

// capabilityDate is when the capabilities last changed; change it with them.
const capabilityDate = "2026-11-30"

func (s *Server) fhirMetadata(c echo.Context) error {
	cs := capabilityStatement{ResourceType: "CapabilityStatement", Status: "active", Date: capabilityDate, Kind: "instance",
		FHIRVersion: "4.0.1", Format: []string{"json"}}
	cs.Implementation.Description = "chartstream FHIR R4 read API"
	rest := capabilityRest{Mode: "server"}
	rest.Security.Service = []fhirConcept{{Coding: []fhirCoding{{
		System: "http://terminology.hl7.org/CodeSystem/restful-security-service", Code: "OAuth", Display: "OAuth"}}}}
	rest.Security.Description = "OAuth 2.0 bearer token carrying the tenant; roles clinician, nurse or auditor read."
	// The interactions beyond search and read are those the routes serve,
	// so the statement cannot promise one that is not there.
	served := map[string]bool{}
	for _, r := range slices.Concat(s.fhirRoutes(), s.fhirHistoryRoutes()) {
		served[r.Method+" "+r.Path] = true
	}
	for _, r := range fhirSearches {
		base := fhirBase + "/" + r.Type
		search := map[string]string{"code": "search-type"}
		if served[http.MethodPost+" "+base+"/_search"] {
			search["documentation"] = "also POST " + r.Type + "/_search, the parameters in a form body: they stay out of URLs and logs"
		}
		res := capabilityResource{Type: r.Type, Interaction: []map[string]string{search}, SearchParam: r.Params}
		if r.Read {
			res.Interaction = append(res.Interaction, map[string]string{"code": "read"})
		}
		if served[http.MethodGet+" "+base+"/:id/_history/:vid"] {
			res.Interaction = append(res.Interaction, map[string]string{"code": "vread"})
		}
		if served[http.MethodGet+" "+base+"/:id/_history"] {
			res.Interaction = append(res.Interaction, map[string]string{"code": "history-instance"})
		}
		rest.Resource = append(rest.Resource, res)
	}
	cs.Rest = []capabilityRest{rest}
	return writeFHIR(c, http.StatusOK, cs)
}

// fhirBundle is a searchset Bundle.
type fhirBundle struct {
	ResourceType string      `json:"resourceType"`
	Type         string      `json:"type"`
	Total        *int        `json:"total,omitempty"`
	Link         []fhirLink  `json:"link"`
	Entry        []fhirEntry `json:"entry,omitempty"`
}

type fhirLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type fhirEntry struct {
	FullURL  string `json:"fullUrl"`
	Resource any    `json:"resource"`
	Search   struct {
		Mode string `json:"mode"`
	} `json:"search"`
}

// fhirBaseURL is the absolute base URL as the client reached it (X-
// Forwarded-Proto honoured for the scheme).
func fhirBaseURL(c echo.Context) string {
	return c.Scheme() + "://" + c.Request().Host + fhirBase
}

// writeSearchset answers one page of a search of typ: items mapped with
// res, next the read model's cursor of the following page ("" on the last).
// Total is given when it is cheap: when this page is the whole result.
func writeSearchset[T any](c echo.Context, typ string, items []T, next string, id func(T) uuid.UUID, res func(T) any) error {
	base := fhirBaseURL(c)
	q, _ := c.Get(searchParamsKey).(url.Values)
	linked, path := q, typ
	if c.Request().Method == http.MethodPost {
		// A search by POST keeps its parameters out of URLs, links
		// included: they carry the paging only, and the client posts its
		// parameters again with the next link's _cursor.
		linked, path = url.Values{}, typ+"/_search"
		for _, k := range []string{paramCount, paramCursor} {
			if v, ok := q[k]; ok {
				linked[k] = v
			}
		}
	}
	b := fhirBundle{ResourceType: "Bundle", Type: "searchset",
		Link: []fhirLink{{Relation: "self", URL: searchURL(base, path, linked)}}, Entry: make([]fhirEntry, 0, len(items))}
	if next != "" {
		nq := url.Values{}
		for k, v := range linked {
			nq[k] = v
		}
		nq.Set(paramCursor, next)
		b.Link = append(b.Link, fhirLink{Relation: "next", URL: searchURL(base, path, nq)})
	} else if q.Get(paramCursor) == "" {
		b.Total = new(len(items))
	}
	for _, it := range items {
		e := fhirEntry{FullURL: base + "/" + typ + "/" + id(it).String(), Resource: res(it)}
		e.Search.Mode = "match"
		b.Entry = append(b.Entry, e)
	}
	return writeFHIR(c, http.StatusOK, b)
}

func searchURL(base, typ string, q url.Values) string {
	if len(q) == 0 {
		return base + "/" + typ
	}
	return base + "/" + typ + "?" + q.Encode()
}
