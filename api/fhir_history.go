package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/projections"
	"github.com/chartstream/chartstream/projections/chart"
)

// A Patient's versions are its stream's: every patient event makes one,
// rebuilt from the event store (not the read model), as time travel does.

// fhirHistoryBundle is a history Bundle: the resource's versions, newest
// first, each with the interaction that made it.
type fhirHistoryBundle struct {
	ResourceType string             `json:"resourceType"`
	Type         string             `json:"type"`
	Total        *int64             `json:"total,omitempty"`
	Link         []fhirLink         `json:"link"`
	Entry        []fhirHistoryEntry `json:"entry,omitempty"`
}

type fhirHistoryEntry struct {
	FullURL  string      `json:"fullUrl"`
	Resource fhirPatient `json:"resource"`
	Request  struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request"`
	Response struct {
		Status       string `json:"status"`
		LastModified string `json:"lastModified"`
	} `json:"response"`
}

func (s *Server) fhirHistoryRoutes() []route {
	return []route{
		{Method: http.MethodGet, Path: fhirBase + "/Patient/:id/_history", Summary: "FHIR: a Patient's versions, newest first (history Bundle)",
			Roles: readers, Query: new(fhirPaging), Response: new(fhirHistoryBundle), ContentType: FHIRContentType, PHI: patientPHI,
			Handle: s.fhirPatientHistory},
		{Method: http.MethodGet, Path: fhirBase + "/Patient/:id/_history/:vid", Summary: "FHIR: one version of a Patient (vread)",
			Roles: readers, Response: new(fhirPatient), ContentType: FHIRContentType, PHI: patientPHI, Handle: s.fhirPatientVersion},
	}
}

// patientVersions replays the patient's own stream and calls fn with the
// Patient after each version up to last (all when 0); fn returns false to
// stop. It returns the number of the last version replayed.
func (s *Server) patientVersions(ctx context.Context, tenant chartstream.TenantID, id uuid.UUID, last int64, fn func(chart.Chart) bool) error {
	r := chart.NewReplay()
	errStop := errors.New("stop")
	err := s.deps.History.PatientEvents(ctx, tenant, patient.Stream(id), eventstore.RecordFilter{StreamType: patient.StreamType},
		func(e chartstream.Event) error {
			if last > 0 && e.Version > last {
				return errStop
			}
			if err := r.Apply(e); err != nil {
				return err
			}
			ch, err := r.Demographics()
			if err != nil {
				return err
			}
			if !fn(ch) {
				return errStop
			}
			return nil
		})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// fhirPatientHistory answers a page of the patient's versions, newest
// first: _count of them (default 50) below _cursor (a version).
func (s *Server) fhirPatientHistory(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	q, err := parseQuery(c.Request().URL.RawQuery, map[string]queryParam{paramCursor: {maxLen: 20, repeats: 1}, paramCount: {maxLen: 3, repeats: 1}}, true)
	if err != nil {
		return err
	}
	limit := projections.DefaultLimit
	if v := q.Get(paramCount); v != "" {
		if limit, err = plainInt(paramCount, v, `minimum:"1" maximum:"200"`); err != nil {
			return err
		}
	}
	var below int64
	if v := q.Get(paramCursor); v != "" {
		if below, err = strconv.ParseInt(v, 10, 64); err != nil || below < 2 || strconv.FormatInt(below, 10) != v {
			return chartstream.Invalid(chartstream.FieldError{Field: paramCursor, Reason: "is not a cursor of this history"})
		}
	}
	// The last limit versions below the cursor, oldest first, in a ring.
	window := make([]chart.Chart, 0, limit)
	var newest int64
	err = s.patientVersions(c.Request().Context(), callerOf(c).Tenant, id, below-1, func(ch chart.Chart) bool {
		if len(window) == limit {
			window = append(window[:0], window[1:]...)
		}
		window = append(window, ch)
		newest = ch.Version
		return true
	})
	if err != nil {
		return err
	}
	base := fhirBaseURL(c)
	self := base + "/Patient/" + id.String() + "/_history"
	b := fhirHistoryBundle{ResourceType: "Bundle", Type: "history", Link: []fhirLink{{Relation: "self", URL: self + "?" + q.Encode()}}}
	if below == 0 {
		b.Total = &newest // the whole history's, known on the first page only
	}
	for i := len(window) - 1; i >= 0; i-- {
		ch := window[i]
		e := fhirHistoryEntry{FullURL: base + "/Patient/" + id.String(), Resource: fhirPatientOf(ch.PatientSummary, &ch)}
		e.Request.Method, e.Request.URL = "PUT", "Patient/"+id.String()
		e.Response.Status, e.Response.LastModified = "200 OK", fhirTime(ch.UpdatedAt)
		if ch.Version == 1 {
			e.Request.Method, e.Request.URL, e.Response.Status = "POST", "Patient", "201 Created"
		}
		b.Entry = append(b.Entry, e)
	}
	if len(window) > 0 && window[0].Version > 1 {
		next := url.Values{paramCount: {strconv.Itoa(limit)}, paramCursor: {strconv.FormatInt(window[0].Version, 10)}}
		b.Link = append(b.Link, fhirLink{Relation: "next", URL: self + "?" + next.Encode()})
	}
	return writeFHIR(c, http.StatusOK, b)
}

// fhirPatientVersion answers one version of the Patient (FHIR vread). A
// version the patient does not have is 404, like an unknown patient.
func (s *Server) fhirPatientVersion(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	vid, err := strconv.ParseInt(c.Param("vid"), 10, 64)
	if err != nil || vid < 1 || strconv.FormatInt(vid, 10) != c.Param("vid") {
		vid = 0 // after the patient is known: an unknown patient answers as such
	}
	var found *chart.Chart
	err = s.patientVersions(c.Request().Context(), callerOf(c).Tenant, id, max(vid, 1), func(ch chart.Chart) bool {
		if ch.Version == vid {
			found = &ch
		}
		return true
	})
	if err != nil {
		return err
	}
	if found == nil {
		return chartstream.Errorf(chartstream.ENOTFOUND, "no such version of the patient")
	}
	c.Response().Header().Set(headerETag, `W/"`+strconv.FormatInt(vid, 10)+`"`)
	return writeFHIR(c, http.StatusOK, fhirPatientOf(found.PatientSummary, found))
}
