package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/audit"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/accesslog"
	"github.com/chartstream/chartstream/internal/logging"
)

// Auditor checks a tenant's history against its signed checkpoints and
// finds the newest one (audit.Verifier).
type Auditor interface {
	Verify(ctx context.Context, tenant chartstream.TenantID, progress eventstore.ProgressFn) (audit.Report, error)
	Newest(ctx context.Context, tenant chartstream.TenantID) (*eventstore.Checkpoint, error)
}

// Media types of an export.
const (
	mimeNDJSON = "application/x-ndjson"
	mimeCSV    = "text/csv"
)

type (
	exportQuery struct {
		Since      string `query:"since" format:"date-time" maxLength:"64" description:"recorded at or after (RFC 3339)"`
		Until      string `query:"until" format:"date-time" maxLength:"64" description:"recorded before (RFC 3339)"`
		StreamType string `query:"stream_type" enum:"patient,encounter,medication_order" maxLength:"63"`
		EventType  string `query:"event_type" maxLength:"127" description:"e.g. patient.registered"`
		Patient    string `query:"patient" format:"uuid" maxLength:"64" description:"the patient's streams: its own, its encounters and orders"`
		Format     string `query:"format" enum:"ndjson,csv" maxLength:"8" description:"default: text/csv when Accept asks for it, else ndjson"`
		Cursor     string `query:"cursor" maxLength:"96" description:"resume after this event: the cursor of the last line received (opaque)"`
		Anchored   string `query:"anchored" enum:"true,false" maxLength:"5" description:"true: end with the last event the newest checkpoint covers, so that a full export verifies with none unanchored"`
		Limit      int    `query:"limit" minimum:"1" maximum:"10000000"`
	}
	accessQuery struct {
		Patient string `query:"patient" format:"uuid" maxLength:"64"`
		Actor   string `query:"actor" maxLength:"255" description:"a token subject"`
		Since   string `query:"since" format:"date-time" maxLength:"64"`
		Cursor  string `query:"cursor" maxLength:"20" description:"a page's next_cursor"`
		Limit   int    `query:"limit" minimum:"1" maximum:"1000" description:"default 100"`
	}
	accessPage struct {
		Items []accesslog.Entry `json:"items"`
		Next  string            `json:"next_cursor,omitempty"`
	}
	// exportBody documents the export's NDJSON lines for the OpenAPI
	// document: a first line {"record":"export",...}, one
	// {"record":"event",...} per event, a last {"record":"end",...}.
	exportBody struct {
		Record string `json:"record" enum:"export,event,end"`
	}
)

func (s *Server) auditRoutes() []route {
	return []route{
		{Method: http.MethodGet, Path: "/v1/audit/events", Summary: "Export the history in commit order: NDJSON, or CSV with Accept: text/csv; PHI decrypted",
			Roles: auditors, Query: new(exportQuery), Response: new(exportBody), ContentType: mimeNDJSON, PHI: namedPHI, Long: true, Handle: s.exportEvents},
		{Method: http.MethodGet, Path: "/v1/audit/verify", Summary: "Check the history against its signed checkpoints (JSON report)",
			Roles: auditors, Response: new(audit.Report), PHI: noPHI, Long: true, Handle: s.verifyHistory},
		{Method: http.MethodGet, Path: "/v1/audit/access", Summary: "The PHI access log: who read whose PHI, when and why",
			Roles: auditors, Query: new(accessQuery), Response: new(accessPage), PHI: noPHI, Handle: s.listAccess},
	}
}

// parseTimes reads RFC 3339 query times; malformed ones are field errors.
func parseTimes(fields *[]chartstream.FieldError, values map[string]string, dst map[string]*time.Time) {
	for name, v := range values {
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			*fields = append(*fields, chartstream.FieldError{Field: name, Reason: "must be an RFC 3339 date-time"})
			continue
		}
		*dst[name] = t
	}
}

// exportParams checks the export's query.
func exportParams(c echo.Context, q exportQuery, cursors *eventstore.CursorCodec) (audit.ExportParams, error) {
	p := audit.ExportParams{Tenant: callerOf(c).Tenant, Format: q.Format, Cursors: cursors}
	f := &p.Filter
	var fields []chartstream.FieldError
	parseTimes(&fields, map[string]string{"since": q.Since, "until": q.Until}, map[string]*time.Time{"since": &f.Since, "until": &f.Until})
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		fields = append(fields, chartstream.FieldError{Field: "until", Reason: "must be after since"})
	}
	if q.Patient != "" {
		id, err := uuid.Parse(q.Patient)
		if err != nil {
			fields = append(fields, chartstream.FieldError{Field: "patient", Reason: "must be a patient id (UUID)"})
		}
		f.Patient = patient.Stream(id)
	}
	if q.Cursor != "" {
		var err error
		if f.After, err = cursors.Open(q.Cursor); err != nil {
			fields = append(fields, chartstream.FieldError{Field: "cursor", Reason: "must be the cursor of an exported event"})
		}
	}
	if q.Anchored != "" && q.Anchored != "true" && q.Anchored != "false" {
		fields = append(fields, chartstream.FieldError{Field: "anchored", Reason: "must be true or false"})
	}
	if p.Format == "" {
		p.Format = audit.FormatNDJSON
		if strings.Contains(c.Request().Header.Get(echo.HeaderAccept), mimeCSV) {
			p.Format = audit.FormatCSV
		}
	} else if _, err := audit.ParseFormat(p.Format); err != nil {
		fields = append(fields, chartstream.FieldError{Field: "format", Reason: "must be ndjson or csv"})
	}
	f.StreamType, f.EventType, f.Limit = q.StreamType, q.EventType, q.Limit
	if len(fields) > 0 {
		return p, chartstream.Invalid(fields...)
	}
	return p, nil
}

// exportEvents streams the export. Rows go from the database to the
// client as they come; a failure after the first bytes cuts the
// connection, so a client never takes a partial export for a whole one
// (an NDJSON export also ends with its "end" line).
func (s *Server) exportEvents(c echo.Context) error {
	var q exportQuery
	if err := bindQuery(c, &q); err != nil {
		return err
	}
	ctx := c.Request().Context()
	cursors, err := s.deps.History.CursorCodec(ctx, callerOf(c).Tenant)
	if err != nil {
		return err
	}
	p, err := exportParams(c, q, cursors)
	if err != nil {
		return err
	}
	anchored := q.Anchored == "true"
	if p.Format == audit.FormatNDJSON || anchored {
		if p.Checkpoint, err = s.deps.Auditor.Newest(ctx, p.Tenant); err != nil {
			return err
		}
	}
	if anchored {
		if err := p.UpToCheckpoint(); err != nil {
			return err
		}
	}
	if p.Filter.Patient.ID != uuid.Nil {
		accessed(c, p.Filter.Patient.ID)
	} else {
		accessedAll(c)
	}
	res := c.Response()
	if p.Format == audit.FormatCSV {
		res.Header().Set(echo.HeaderContentType, mimeCSV+"; charset=utf-8")
	} else {
		res.Header().Set(echo.HeaderContentType, mimeNDJSON)
	}
	if _, err := audit.Export(ctx, s.deps.History, res, p); err != nil {
		if !res.Committed {
			return err
		}
		s.deps.Logger.ErrorContext(ctx, "export cut short", logging.Error(err))
		panic(http.ErrAbortHandler)
	}
	return nil
}

func (s *Server) verifyHistory(c echo.Context) error {
	report, err := s.deps.Auditor.Verify(c.Request().Context(), callerOf(c).Tenant, nil)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, report)
}

func (s *Server) listAccess(c echo.Context) error {
	var q accessQuery
	if err := bindQuery(c, &q); err != nil {
		return err
	}
	p := accesslog.ListParams{Actor: q.Actor, Limit: q.Limit}
	var fields []chartstream.FieldError
	parseTimes(&fields, map[string]string{"since": q.Since}, map[string]*time.Time{"since": &p.Since})
	if q.Patient != "" {
		var err error
		if p.Patient, err = uuid.Parse(q.Patient); err != nil {
			fields = append(fields, chartstream.FieldError{Field: "patient", Reason: "must be a patient id (UUID)"})
		}
	}
	if q.Cursor != "" {
		n, err := strconv.ParseInt(q.Cursor, 10, 64)
		if err != nil || n < 1 || strconv.FormatInt(n, 10) != q.Cursor {
			fields = append(fields, chartstream.FieldError{Field: "cursor", Reason: "is not a cursor of this listing"})
		}
		p.After = n
	}
	if len(fields) > 0 {
		return chartstream.Invalid(fields...)
	}
	page, err := accesslog.List(c.Request().Context(), s.deps.ReadModels, callerOf(c).Tenant, p)
	if err != nil {
		return err
	}
	out := accessPage{Items: page.Items}
	if page.Next > 0 {
		out.Next = strconv.FormatInt(page.Next, 10)
	}
	return c.JSON(http.StatusOK, out)
}
