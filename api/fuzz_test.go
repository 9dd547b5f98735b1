package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream"
)

// Native fuzz targets of the API's decoders. Seeds are in
// testdata/fuzz/<target>; make fuzz runs each for FUZZTIME.

// fuzzEcho makes the fuzz targets' contexts (one Echo: making one is slow).
var fuzzEcho = echo.New()

// fuzzContext is the Echo context of one request to path with the raw
// query, which may hold any bytes: the parsers must cope with them all.
func fuzzContext(method, path, query, contentType string, body []byte) echo.Context {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.URL.RawQuery = query
	if contentType != "" {
		req.Header.Set(echo.HeaderContentType, contentType)
	}
	return fuzzEcho.NewContext(req, httptest.NewRecorder())
}

// sensitive keeps the strings an error must never repeat: those that could
// be PHI, four or more characters with one outside lowercase ASCII words
// and numbers (which the fixed reasons are made of).
func sensitive(all []string) []string {
	var out []string
	for _, s := range all {
		if utf8.RuneCountInString(s) >= 4 && strings.IndexFunc(s, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune(" _.:-", r))
		}) >= 0 {
			out = append(out, s)
		}
	}
	return out
}

// jsonStrings lists the strings of a JSON text, as far as it parses.
func jsonStrings(data []byte) []string {
	var out []string
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		if s, ok := tok.(string); ok {
			out = append(out, s)
		}
	}
}

// queryStrings lists the names and values of a query, leniently parsed.
func queryStrings(raw string) []string {
	q, _ := url.ParseQuery(raw)
	var out []string
	for k, vs := range q {
		out = append(append(out, k), vs...)
	}
	return out
}

// wantClientError fails unless err is a *chartstream.Error rendered as a
// 4xx problem that repeats none of the input strings.
func wantClientError(t *testing.T, err error, input []string) {
	t.Helper()
	var e *chartstream.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is a %T, want a *chartstream.Error", err, err)
	}
	p := problemFor(err)
	if p.Status < 400 || p.Status >= 500 {
		t.Fatalf("error %v renders as %d, want a 4xx", err, p.Status)
	}
	// The texts an error could echo input into: its detail and field
	// errors. (Type, title and status are fixed per code: the input
	// "400," is not repeated by a status of 400.)
	texts := []string{p.Detail}
	for _, f := range p.Errors {
		texts = append(texts, f.Field, f.Reason)
	}
	for _, s := range sensitive(input) {
		for _, text := range texts {
			if strings.Contains(text, s) {
				body, _ := json.Marshal(p)
				t.Fatalf("problem %s repeats the input %q", body, s)
			}
		}
	}
}

// bodyTypes are the JSON request types of the route table, and struct{}
// for the routes without a body (refuseBody).
func bodyTypes() []reflect.Type {
	types := []reflect.Type{reflect.TypeFor[struct{}]()}
	for _, r := range (&Server{}).routeTable() {
		if r.Request != nil && r.RequestType == "" {
			types = append(types, reflect.TypeOf(r.Request).Elem())
		}
	}
	return types
}

// FuzzDecodeBody decodes bodies into each request type (route picks it):
// never a panic; a refusal is a 4xx *chartstream.Error repeating nothing
// of the body; what is accepted is one UTF-8 JSON value (nothing
// repaired or dropped) and re-encodes to a body that decodes equal.
func FuzzDecodeBody(f *testing.F) {
	types := bodyTypes()
	f.Fuzz(func(t *testing.T, route uint8, data []byte) {
		typ := types[int(route)%len(types)]
		decode := func(body []byte) (any, error) {
			dst := reflect.New(typ).Interface()
			return dst, decodeBody(fuzzContext(http.MethodPost, "/", "", echo.MIMEApplicationJSON, body), dst, false)
		}
		dst, err := decode(data)
		if err != nil {
			wantClientError(t, err, jsonStrings(data))
			return
		}
		// Nothing repaired: no invalid UTF-8 to rewrite, nothing after
		// the value to drop.
		if !utf8.Valid(data) || !json.Valid(data) {
			t.Fatalf("%s: accepted %q, which is not one UTF-8 JSON value", typ, data)
		}
		first, err := json.Marshal(dst)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decode(first)
		if err != nil {
			t.Fatalf("%s: re-encoded %s refused: %v", typ, first, err)
		}
		if second, _ := json.Marshal(again); !bytes.Equal(first, second) {
			t.Fatalf("%s: round trip turned %s into %s", typ, first, second)
		}
	})
}

// FuzzFHIRSearchParams parses FHIR search parameters of each searchable
// type (typ picks it), from a URL or, post set, a form body, and then as
// the handlers do (dates, the patient reference): never a panic; a
// refusal is a 4xx *chartstream.Error repeating nothing of the input;
// what is accepted holds only the type's parameters, within their limits,
// and parses the same again from its own encoding.
func FuzzFHIRSearchParams(f *testing.F) {
	f.Fuzz(func(t *testing.T, typ uint8, post bool, raw string) {
		name := fhirSearches[int(typ)%len(fhirSearches)].Type
		parse := func(raw string, post bool) (url.Values, fhirPage, error) {
			if post {
				return fhirQuery(fuzzContext(http.MethodPost, fhirBase+"/"+name+"/_search", "", echo.MIMEApplicationForm, []byte(raw)), name)
			}
			return fhirQuery(fuzzContext(http.MethodGet, fhirBase+"/"+name, raw, "", nil), name)
		}
		q, page, err := parse(raw, post)
		if err != nil {
			wantClientError(t, err, queryStrings(raw))
			return
		}
		if _, err := url.ParseQuery(raw); err != nil {
			t.Fatalf("accepted %q, which has a malformed pair", raw)
		}
		for k, vs := range q {
			if k != "date" && len(vs) > 1 || len(vs) > 2 {
				t.Fatalf("%s given %d times", k, len(vs))
			}
			for _, v := range vs {
				if v == "" || !utf8.ValidString(v) || utf8.RuneCountInString(v) > maxQueryValue {
					t.Fatalf("%s: value of %d bytes taken", k, len(v))
				}
			}
		}
		for _, d := range q["date"] {
			if since, until, err := dateBounds(d); err != nil {
				wantClientError(t, err, queryStrings(raw))
			} else if !since.IsZero() && !until.IsZero() && !since.Before(until) {
				t.Fatalf("date bounds [%s, %s) are empty", since, until)
			}
		}
		if q.Has("patient") {
			if _, err := patientParam(q); err != nil {
				wantClientError(t, err, queryStrings(raw))
			}
		}
		q2, page2, err := parse(q.Encode(), false)
		if err != nil || !reflect.DeepEqual(q, q2) || page != page2 {
			t.Fatalf("%s re-encoded as %q: %v, %v (%v)", name, q.Encode(), q2, page2, err)
		}
	})
}

// queryTypes are the query structs of the JSON reads.
var queryTypes = []reflect.Type{
	reflect.TypeFor[patientSearchQuery](), reflect.TypeFor[observationQuery](),
	reflect.TypeFor[encounterQuery](), reflect.TypeFor[orderQuery](),
}

// encodeQuery writes a bound query struct back as a query string.
func encodeQuery(v reflect.Value) string {
	q := url.Values{}
	for _, f := range reflect.VisibleFields(v.Type()) {
		name, fv := f.Tag.Get("query"), v.FieldByIndex(f.Index)
		switch {
		case name == "" || fv.IsZero():
		case f.Type.Kind() == reflect.Int:
			q.Set(name, strconv.FormatInt(fv.Int(), 10))
		default:
			q.Set(name, fv.String())
		}
	}
	return q.Encode()
}

// FuzzQueryParams binds the JSON reads' query parameters (typ picks the
// struct): never a panic; a refusal is a 4xx *chartstream.Error repeating
// nothing of the query; what is bound binds the same from its own encoding.
func FuzzQueryParams(f *testing.F) {
	f.Fuzz(func(t *testing.T, typ uint8, raw string) {
		qt := queryTypes[int(typ)%len(queryTypes)]
		bind := func(raw string) (reflect.Value, error) {
			dst := reflect.New(qt)
			return dst.Elem(), bindQuery(fuzzContext(http.MethodGet, "/v1/x", raw, "", nil), dst.Interface())
		}
		v, err := bind(raw)
		if err != nil {
			wantClientError(t, err, queryStrings(raw))
			return
		}
		if _, err := url.ParseQuery(raw); err != nil {
			t.Fatalf("accepted %q, which has a malformed pair", raw)
		}
		again, err := bind(encodeQuery(v))
		if err != nil || !reflect.DeepEqual(v.Interface(), again.Interface()) {
			t.Fatalf("%s bound as %+v, again as %+v (%v)", qt, v, again, err)
		}
	})
}

// FuzzConsistencyToken parses X-Consistency-Token values: never a panic;
// a refusal is EINVALID repeating nothing; an accepted token is exactly
// the one ConsistencyToken makes for its event.
func FuzzConsistencyToken(f *testing.F) {
	f.Fuzz(func(t *testing.T, token string) {
		event, err := ParseConsistencyToken(token)
		if err != nil {
			wantClientError(t, err, []string{token})
			return
		}
		if event == uuid.Nil || ConsistencyToken(event) != token {
			t.Fatalf("token %q read as event %s, which is written %q", token, event, ConsistencyToken(event))
		}
	})
}
