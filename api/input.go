package api

import (
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/idempotency"
	"github.com/chartstream/chartstream/internal/strictjson"
)

// Inputs outside bodies are held to the bodies' rules: UTF-8, given once
// where only one is meaningful, within a documented length, never
// truncated or defaulted; anything else is EINVALID naming the parameter
// or header, without its value.

// maxQueryValue bounds a query parameter's value, in characters, where its
// field documents no maxLength.
const maxQueryValue = strictjson.DefaultMaxString

// queryParam says how a query parameter may be given.
type queryParam struct {
	maxLen  int // characters
	repeats int // how many times it may be given
}

// parseQuery parses raw, a URL's query or a form body, strictly: every
// pair well-formed (url.Values silently drops a malformed one, widening a
// search), naming one of params at most its repeats times, its value UTF-8
// without control characters, of at most maxLen characters. An empty
// value is dropped when ignoreEmpty is set (FHIR ignores empty
// parameters) and refused otherwise. Errors name the parameter when its
// name is plain.
func parseQuery(raw string, params map[string]queryParam, ignoreEmpty bool) (url.Values, error) {
	q := url.Values{}
	var fields []chartstream.FieldError
	add := func(name, reason string) {
		fields = append(fields, chartstream.FieldError{Field: name, Reason: reason})
	}
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil || strings.Contains(rawName, ";") || !utf8.ValidString(name) {
			return nil, chartstream.Errorf(chartstream.EINVALID, "a query parameter's name is malformed")
		}
		p, known := params[name]
		if !known {
			add(plainParam(name), "is not a supported parameter")
			continue
		}
		value, err := url.QueryUnescape(rawValue)
		switch {
		case err != nil || strings.Contains(rawValue, ";"):
			add(name, "is not well-formed percent-encoding")
		case !utf8.ValidString(value):
			add(name, "is not valid UTF-8")
		case strings.IndexFunc(value, unicode.IsControl) >= 0:
			// Meaningless in a search or an id, and a NUL made
			// PostgreSQL fail the query: a 500.
			add(name, "contains a control character")
		case utf8.RuneCountInString(value) > p.maxLen:
			add(name, "must be at most "+strconv.Itoa(p.maxLen)+" characters")
		case value == "" && !ignoreEmpty:
			add(name, "must not be empty; leave it out instead")
		case len(q[name]) >= p.repeats && value != "":
			if p.repeats == 1 {
				add(name, "must be given once")
			} else {
				add(name, "must be given at most "+strconv.Itoa(p.repeats)+" times")
			}
		case value != "":
			q[name] = append(q[name], value)
		}
	}
	if len(fields) > 0 {
		return nil, chartstream.Invalid(fields...)
	}
	return q, nil
}

// plainParam is a parameter's name as an error may show it: shaped like
// the API's own (lowercase ASCII, FHIR's _ and : included); anything else
// may be anything, a patient's name included, and shows as "?".
func plainParam(name string) string {
	if len(name) > 64 || strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == ':' || r == '.')
	}) >= 0 {
		return "?"
	}
	return name
}

// bindQuery binds the URL's query parameters into dst, a pointer to a
// struct whose query tags name them: maxLength limits a string, maxItems
// the repeats of a slice, minimum and maximum an integer, which must be
// written plainly (no sign, no leading zero). Unknown, repeated, empty and
// malformed parameters are EINVALID.
func bindQuery(c echo.Context, dst any) error {
	v := reflect.ValueOf(dst).Elem()
	params := map[string]queryParam{}
	fields := map[string]reflect.StructField{}
	for _, f := range reflect.VisibleFields(v.Type()) {
		name := f.Tag.Get("query")
		if name == "" {
			continue
		}
		p := queryParam{maxLen: maxQueryValue, repeats: 1}
		if n, err := strconv.Atoi(f.Tag.Get("maxLength")); err == nil {
			p.maxLen = n
		}
		if f.Type.Kind() == reflect.Slice {
			p.repeats = strictjson.DefaultMaxItems
			if n, err := strconv.Atoi(f.Tag.Get("maxItems")); err == nil {
				p.repeats = n
			}
		}
		params[name], fields[name] = p, f
	}
	q, err := parseQuery(c.Request().URL.RawQuery, params, false)
	if err != nil {
		return err
	}
	for name, values := range q {
		f := fields[name]
		dstField := v.FieldByIndex(f.Index)
		switch f.Type.Kind() {
		case reflect.String:
			dstField.SetString(values[0])
		case reflect.Slice:
			dstField.Set(reflect.ValueOf(values))
		case reflect.Int:
			n, err := plainInt(name, values[0], f.Tag)
			if err != nil {
				return err
			}
			dstField.SetInt(int64(n))
		}
	}
	return nil
}

// plainInt parses a whole number written plainly, within the minimum and
// maximum of its field's tag.
func plainInt(name, v string, tag reflect.StructTag) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || strconv.Itoa(n) != v {
		return 0, chartstream.Invalid(chartstream.FieldError{Field: name, Reason: "must be a whole number"})
	}
	return n, strictjson.Bounds(name, float64(n), tag)
}

// refuseQuery refuses every query parameter: the route takes none, and
// one a client thought it sent must not be silently ignored.
func refuseQuery(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if _, err := parseQuery(c.Request().URL.RawQuery, nil, false); err != nil {
			return err
		}
		return next(c)
	}
}

// maxPathID bounds a path id: longer, or not UTF-8, is not a mistyped id
// but malformed input.
const maxPathID = 64

// pathID parses a path parameter as a UUID in its canonical form. A
// well-formed string that is no id is 404, like an unknown id: the API
// never says more about ids than whether it has them. A value that is not
// UTF-8 or longer than maxPathID is EINVALID.
func pathID(c echo.Context, name string) (uuid.UUID, error) {
	return parseID(name, c.Param(name))
}

func parseID(name, v string) (uuid.UUID, error) {
	if !utf8.ValidString(v) || len(v) > maxPathID {
		return uuid.Nil, chartstream.Invalid(chartstream.FieldError{Field: name, Reason: "must be an id (UUID)"})
	}
	id, err := uuid.Parse(v)
	if err != nil || len(v) != 36 {
		return uuid.Nil, chartstream.Errorf(chartstream.ENOTFOUND, "no such resource")
	}
	return id, nil
}

// headerRule is how a request header the API reads may be given.
type headerRule struct {
	name   string
	max    int               // bytes
	valid  func(string) bool // nil: any UTF-8 value
	reason string
}

// headerRequestID is echo.HeaderXRequestID as errors name it.
const headerRequestID = "X-Request-ID"

// idRule is the rule of caller-chosen ids that go to logs and events.
const idRule = "must be 1 to 64 letters, digits, -, _ or ."

// headerRules are the headers the API reads. Each may be given once.
var headerRules = []headerRule{
	{headerRequestID, 64, validRequestID, idRule},
	{headerCorrelationID, 64, validRequestID, idRule},
	{headerClient, 64, validRequestID, idRule},
	{headerIfMatch, 64, func(v string) bool { _, err := parseIfMatch(v); return err == nil }, "must be a version from an ETag"},
	{HeaderConsistencyToken, 64, func(v string) bool { _, err := ParseConsistencyToken(v); return err == nil },
		"must be a token from a command's response"},
	{headerIdempotencyKey, idempotency.MaxKeyLength, visibleASCII, "must be 1 to 255 visible ASCII characters"},
	{echo.HeaderAuthorization, 16<<10 + len("Bearer "), nil, ""},
	{echo.HeaderContentType, 255, nil, ""},
}

// checkHeaders refuses requests whose headers the API reads are given
// twice (only the first would count), are not UTF-8, are too long or are
// malformed: EINVALID naming the header. Before, a malformed X-Request-ID
// was replaced and a malformed consistency token ignored.
func (s *Server) checkHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header
		var fields []chartstream.FieldError
		for _, r := range headerRules {
			values := h.Values(r.name)
			reason := ""
			switch {
			case len(values) == 0:
				continue
			case len(values) > 1:
				reason = "must be given once"
			case !utf8.ValidString(values[0]):
				reason = "is not valid UTF-8"
			case len(values[0]) > r.max:
				reason = "must be at most " + strconv.Itoa(r.max) + " bytes"
			case r.valid != nil && !r.valid(values[0]):
				reason = r.reason
			default:
				continue
			}
			fields = append(fields, chartstream.FieldError{Field: r.name, Reason: reason})
		}
		if len(fields) > 0 {
			return chartstream.Invalid(fields...)
		}
		return next(c)
	}
}

func visibleASCII(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
