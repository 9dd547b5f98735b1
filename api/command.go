package api

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/strictjson"
)

// Response headers of commands.
const (
	// HeaderConsistencyToken carries a token a later query can send back
	// to read its own write (read models wait until they have applied it).
	HeaderConsistencyToken = "X-Consistency-Token"
	headerCorrelationID    = "X-Correlation-ID"
	headerETag             = "ETag"
	headerIfMatch          = "If-Match"
	headerClient           = "X-Client"
)

// ConsistencyToken names a command's last event. It is opaque to clients,
// and it is the event's id, not its global position: positions are shared
// by every tenant, so a tenant seeing them could measure the others'
// writes. ParseConsistencyToken reads it back.
func ConsistencyToken(lastEvent uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte("v2:" + lastEvent.String()))
}

// ParseConsistencyToken returns the event a token names, or EINVALID. Only
// the token ConsistencyToken makes is accepted, not other spellings that
// decode to the same event.
func ParseConsistencyToken(token string) (uuid.UUID, error) {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err == nil {
		if v, ok := strings.CutPrefix(string(raw), "v2:"); ok {
			if id, err := uuid.Parse(v); err == nil && id != uuid.Nil && ConsistencyToken(id) == token {
				return id, nil
			}
		}
	}
	return uuid.Nil, chartstream.Errorf(chartstream.EINVALID, "malformed consistency token")
}

// respond writes a command's result: 201 with Location for creations, 200
// otherwise, the version as ETag, and the consistency token.
func respond(c echo.Context, location string, r chartstream.CommandResult) error {
	h := c.Response().Header()
	h.Set(headerETag, strconv.Quote(strconv.FormatInt(r.Version, 10)))
	if r.LastEvent != uuid.Nil { // a command that changed nothing has nothing to wait for
		h.Set(HeaderConsistencyToken, ConsistencyToken(r.LastEvent))
	}
	status := http.StatusOK
	if location != "" {
		h.Set(echo.HeaderLocation, location)
		status = http.StatusCreated
	}
	return c.JSON(status, r)
}

// decodeBody reads a JSON request body strictly (internal/strictjson): the
// content type must be JSON in UTF-8; trailing data, invalid UTF-8,
// duplicate or unknown member names, wrong types, nesting deeper than 32
// and values over their limits are EINVALID naming the field, without
// echoing its value. Nothing is repaired. An empty body decodes as {} when
// optional is true (commands whose body is optional).
func decodeBody(c echo.Context, dst any, optional bool) error {
	req := c.Request()
	body, err := readBody(req)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return chartstream.Errorf(chartstream.EINVALID, "a JSON request body is required")
	}
	if err := wantContentType(req, echo.MIMEApplicationJSON); err != nil {
		return err
	}
	return strictjson.Decode(body, dst, strictjson.Limits{})
}

// wantContentType refuses a body that is not of media type want (or, for
// JSON, a +json type) in UTF-8: EUNSUPPORTED.
func wantContentType(req *http.Request, want string) error {
	mt, params, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	ok := err == nil && (mt == want || want == echo.MIMEApplicationJSON && strings.HasSuffix(mt, "+json"))
	if cs, has := params["charset"]; ok && has && !strings.EqualFold(cs, "utf-8") {
		ok = false
	}
	if !ok {
		return chartstream.Errorf(chartstream.EUNSUPPORTED, "request body must be %s in UTF-8", want)
	}
	return nil
}

// readBody reads the whole request body: ETOOLARGE over the body limit.
func readBody(req *http.Request) ([]byte, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) || errors.Is(err, echo.ErrStatusRequestEntityTooLarge) {
			return nil, chartstream.Errorf(chartstream.ETOOLARGE, "request body is too large")
		}
		return nil, chartstream.Errorf(chartstream.EINVALID, "could not read the request body")
	}
	return body, nil
}

// ifMatch returns the version an If-Match header pins, nil without one.
func ifMatch(c echo.Context) (*int64, error) {
	h := c.Request().Header.Get(headerIfMatch)
	if h == "" {
		return nil, nil
	}
	return parseIfMatch(h)
}

// parseIfMatch reads an If-Match value: "*" (any version, nil) or one
// entity tag from an ETag, "n" or W/"n". Errors: EINVALID.
func parseIfMatch(h string) (*int64, error) {
	if h == "*" {
		return nil, nil
	}
	quoted := strings.TrimPrefix(h, "W/")
	digits, ok := strings.CutPrefix(quoted, `"`)
	digits, ok2 := strings.CutSuffix(digits, `"`)
	v, err := strconv.ParseInt(digits, 10, 64)
	if !ok || !ok2 || err != nil || v < 1 || strconv.FormatInt(v, 10) != digits {
		return nil, chartstream.Invalid(chartstream.FieldError{Field: "If-Match", Reason: "must be a version from an ETag"})
	}
	return &v, nil
}

// metadata is what every event records about who did it and why.
func metadata(c echo.Context, p chartstream.Principal) chartstream.Metadata {
	req := c.Request()
	requestID := logging.RequestID(req.Context())
	// checkHeaders has refused malformed ones.
	correlation, client := req.Header.Get(headerCorrelationID), req.Header.Get(headerClient)
	if correlation == "" {
		correlation = requestID
	}
	roles := make([]string, len(p.Roles))
	for i, r := range p.Roles {
		roles[i] = string(r)
	}
	return chartstream.Metadata{Actor: p.Subject, Roles: roles, CorrelationID: correlation, RequestID: requestID, Client: client,
		CommandID: commandIDOf(req.Context())}
}

// location builds a resource path.
func location(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// target is what a command takes from its request: the caller, the event
// metadata, the :id path parameter (zero for routes without one) and
// If-Match.
type target struct {
	caller
	md       chartstream.Metadata
	id       uuid.UUID
	expected *int64
}

// command runs the command build makes of the request's target and
// responds with its result. created, when set, makes it a creation: a
// Location built from the format with the path id and the result's id (use
// %[2]s for the result's alone).
func (s *Server) command(c echo.Context, created string, build func(t target) commands.Command) error {
	var t target
	if c.Param("id") != "" {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		t.id = id
	}
	expected, err := ifMatch(c)
	if err != nil {
		return err
	}
	t.caller, t.expected = callerOf(c), expected
	t.md = metadata(c, t.Principal)
	res, err := s.deps.Commands.Run(c.Request().Context(), t.Tenant, t.md, build(t))
	if err != nil {
		return err
	}
	loc := ""
	if created != "" {
		loc = location(created, t.id, res.ID)
	}
	return respond(c, loc, res)
}
