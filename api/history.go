package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/projections/chart"
)

// HistoryReader reads the event store for auditors (eventstore.Store).
type HistoryReader interface {
	Records(ctx context.Context, tenant chartstream.TenantID, f eventstore.RecordFilter, fn eventstore.RecordFn) error
	PatientEvents(ctx context.Context, tenant chartstream.TenantID, patient chartstream.StreamRef, f eventstore.RecordFilter, fn eventstore.EventFn) error
	CursorCodec(ctx context.Context, tenant chartstream.TenantID) (*eventstore.CursorCodec, error)
}

// auditors read the history; the care team reads charts.
var auditors = []chartstream.Role{chartstream.RoleAuditor}

// Headers of a chart as it stood at as_of: its last event's position (a
// cursor sealed for the tenant, as in exports and histories: no global
// position leaves the platform) and recorded time.
const (
	HeaderLastEventPosition   = "X-Last-Event-Position"
	HeaderLastEventRecordedAt = "X-Last-Event-Recorded-At"
)

type (
	chartQuery struct {
		AsOf string `query:"as_of" format:"date-time" maxLength:"64" description:"the chart as it stood at this instant (RFC 3339), rebuilt from the event store"`
	}
	historyQuery struct {
		Cursor string `query:"cursor" maxLength:"96" description:"a page's next_cursor"`
		Limit  int    `query:"limit" minimum:"1" maximum:"1000" description:"default 100"`
	}
	// historyEvent is one event of a patient's history, upcast to the
	// current schema, PHI opened (or listed in erased), with who and when.
	historyEvent struct {
		// Position is where the event is in the tenant's commit order,
		// sealed: the same token as its export line's cursor.
		Position      string                `json:"position"`
		RecordedAt    time.Time             `json:"recorded_at"`
		Stream        chartstream.StreamRef `json:"stream"`
		Version       int64                 `json:"version"`
		EventID       uuid.UUID             `json:"event_id"`
		Type          string                `json:"type"`
		SchemaVersion int                   `json:"schema_version"`
		Payload       json.RawMessage       `json:"payload"`
		Erased        []string              `json:"erased,omitempty"`
		Metadata      chartstream.Metadata  `json:"metadata"`
	}
	historyPage struct {
		Items []historyEvent `json:"items"`
		// Next continues the listing (cursor=); absent on the last page.
		Next string `json:"next_cursor,omitempty"`
	}
)

func (s *Server) historyRoutes() []route {
	return []route{
		{Method: http.MethodGet, Path: "/v1/patients/:id/history", Summary: "Every event of the patient's streams (patient, encounters, orders), oldest first",
			Roles: auditors, Query: new(historyQuery), Response: new(historyPage), PHI: patientPHI, Handle: s.patientHistory},
	}
}

// patientHistory lists a page of the patient's events in commit order.
func (s *Server) patientHistory(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	var q historyQuery
	if err := bindQuery(c, &q); err != nil {
		return err
	}
	f := eventstore.RecordFilter{Limit: 100}
	if q.Limit > 0 {
		f.Limit = q.Limit
	}
	ctx := c.Request().Context()
	cursors, err := s.deps.History.CursorCodec(ctx, callerOf(c).Tenant)
	if err != nil {
		return err
	}
	if q.Cursor != "" {
		if f.After, err = cursors.Open(q.Cursor); err != nil {
			return chartstream.Invalid(chartstream.FieldError{Field: "cursor", Reason: "is not a cursor of this listing"})
		}
	}
	f.Limit++ // one more tells whether a next page exists
	page := historyPage{Items: []historyEvent{}}
	var last eventstore.Cursor
	err = s.deps.History.PatientEvents(ctx, callerOf(c).Tenant, patient.Stream(id), f, func(e chartstream.Event) error {
		if len(page.Items) == f.Limit-1 {
			page.Next = cursors.Seal(last)
			return nil
		}
		page.Items = append(page.Items, historyEvent{Position: cursors.Seal(eventstore.CursorOf(e)), RecordedAt: e.RecordedAt, Stream: e.Stream, Version: e.Version,
			EventID: e.ID, Type: e.Type, SchemaVersion: e.SchemaVersion, Payload: e.Payload, Erased: e.Erased, Metadata: e.Metadata})
		last = eventstore.CursorOf(e)
		return nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}

// parseAsOf reads as_of; malformed is EINVALID naming it.
func parseAsOf(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return t, chartstream.Invalid(chartstream.FieldError{Field: "as_of", Reason: "must be an RFC 3339 date-time, e.g. 2025-01-31T12:00:00Z"})
	}
	return t, nil
}

// chartAsOf rebuilds the patient's chart from the event store as it stood
// at asOf (events recorded at or before it), with the last event's
// position and time. Errors: ENOTFOUND for an unknown patient, or one not
// registered yet at asOf.
func (s *Server) chartAsOf(ctx context.Context, tenant chartstream.TenantID, id uuid.UUID, asOf time.Time) (chart.Chart, chartstream.Event, error) {
	r := chart.NewReplay()
	var last chartstream.Event
	// recorded_at has microseconds: at or before asOf is before the next
	// microsecond.
	until := asOf.Truncate(time.Microsecond).Add(time.Microsecond)
	err := s.deps.History.PatientEvents(ctx, tenant, patient.Stream(id), eventstore.RecordFilter{Until: until}, func(e chartstream.Event) error {
		last = e
		return r.Apply(e)
	})
	if err != nil {
		return chart.Chart{}, last, err
	}
	ch, err := r.Chart()
	return ch, last, err
}

// setLastEvent says which event a rebuilt chart stands at.
func (s *Server) setLastEvent(c echo.Context, e chartstream.Event) error {
	cursors, err := s.deps.History.CursorCodec(c.Request().Context(), callerOf(c).Tenant)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(HeaderLastEventPosition, cursors.Seal(eventstore.CursorOf(e)))
	h.Set(HeaderLastEventRecordedAt, e.RecordedAt.UTC().Format(time.RFC3339Nano))
	return nil
}
