package api_test

import (
	"bytes"
	"encoding"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/api"
	"github.com/chartstream/chartstream/internal/ratelimit"
)

// phiMarker is in every bad value the corpus sends: no answer may repeat
// it.
const phiMarker = "Zyxwvut"

// badCase is one request of the corpus: a body and its media type.
type badCase struct {
	name, body, contentType string
}

// leaf is a scalar field of a request type: its path (member names and
// [0] for an array's first item) and its struct tag.
type leaf struct {
	path []string
	kind reflect.Kind // reflect.String for text (uuid.UUID too)
	tag  reflect.StructTag
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// leaves lists every scalar field of t, at any depth.
func leaves(t reflect.Type, path []string, tag reflect.StructTag) []leaf {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return []leaf{{path, reflect.String, tag}}
	}
	switch t.Kind() {
	case reflect.Struct:
		var out []leaf
		for _, f := range reflect.VisibleFields(t) {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.Anonymous || !f.IsExported() || name == "-" || name == "" {
				continue
			}
			out = append(out, leaves(f.Type, append(slices.Clip(path), name), f.Tag)...)
		}
		return out
	case reflect.Slice:
		return leaves(t.Elem(), append(slices.Clip(path), "[0]"), "")
	}
	return []leaf{{path, t.Kind(), tag}}
}

// set puts v at path in the decoded JSON tree root, making the objects
// and arrays on the way, and returns the root.
func set(root any, path []string, v any) any {
	if len(path) == 0 {
		return v
	}
	if path[0] == "[0]" {
		arr, _ := root.([]any)
		if len(arr) == 0 {
			arr = []any{nil}
		}
		arr = slices.Clone(arr)
		arr[0] = set(arr[0], path[1:], v)
		return arr
	}
	obj, _ := root.(map[string]any)
	out := map[string]any{}
	for k, x := range obj {
		out[k] = x
	}
	out[path[0]] = set(out[path[0]], path[1:], v)
	return out
}

// render writes the tree as JSON with members in order; the object at dup
// (a path joined by "/") gets its first member twice.
func render(v any, at, dup string) string {
	switch x := v.(type) {
	case map[string]any:
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range x {
				if !yield(k) {
					return
				}
			}
		})
		if at == dup && len(keys) > 0 {
			keys = append([]string{keys[0]}, keys...)
		}
		parts := make([]string, len(keys))
		for i, k := range keys {
			name, _ := json.Marshal(k)
			parts[i] = string(name) + ":" + render(x[k], at+"/"+k, dup)
		}
		return "{" + strings.Join(parts, ",") + "}"
	case []any:
		parts := make([]string, len(x))
		for i, item := range x {
			parts[i] = render(item, at+"/[0]", dup)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// objects lists the paths (joined by "/") of the objects in the tree.
func objects(v any, at string) []string {
	switch x := v.(type) {
	case map[string]any:
		out := []string{at}
		for k, item := range x {
			out = append(out, objects(item, at+"/"+k)...)
		}
		return out
	case []any:
		var out []string
		for _, item := range x {
			out = append(out, objects(item, at+"/[0]")...)
		}
		return out
	}
	return nil
}

// rawAt renders tree with the value at path replaced by raw bytes.
func rawAt(tree any, path []string, raw string) string {
	const placeholder = "@@RAW@@"
	s := render(set(tree, path, placeholder), "", "")
	return strings.Replace(s, `"`+placeholder+`"`, raw, 1)
}

// jsonCases are the bad bodies for a JSON route whose valid body is
// example (nil for none) of type request (nil for none).
func jsonCases(example, request any) []badCase {
	tree := any(map[string]any{})
	if example != nil {
		b, _ := json.Marshal(example)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		_ = dec.Decode(&tree)
	}
	valid := render(tree, "", "")
	var fields []leaf
	if request != nil {
		fields = leaves(reflect.TypeOf(request).Elem(), nil, "")
	}
	if len(fields) == 0 { // a body-less route: every field is unknown
		fields = []leaf{{[]string{"note"}, reflect.String, ""}}
	}
	deep := strings.Repeat("[", 40) + strings.Repeat("]", 40)
	cases := []badCase{
		{"malformed JSON", valid[:len(valid)-1], ""},
		{"malformed JSON: a bare word", `{"` + phiMarker + `":` + phiMarker + `}`, ""},
		{"trailing brace", valid + "}", ""},
		{"trailing value", valid + ` {"` + phiMarker + `":1}`, ""},
		{"invalid UTF-8 in a member name", rawAt(tree, []string{"k\xff" + phiMarker}, "1"), ""},
		{"unpaired surrogate escape", rawAt(tree, fields[0].path, `"`+phiMarker+`\ud800"`), ""},
		{"deep nesting at the top", rawAt(tree, []string{fields[0].path[0]}, deep), ""},
		{"deep nesting in a field", rawAt(tree, fields[len(fields)-1].path, deep), ""},
		{"huge array", rawAt(tree, fields[0].path, "["+strings.Repeat(`"`+phiMarker+`",`, 100)+`"x"]`), ""},
		{"wrong content charset", valid, "application/json; charset=iso-8859-1"},
	}
	for _, obj := range objects(tree, "") {
		if strings.Count(render(tree, "", obj), ":") > strings.Count(valid, ":") {
			cases = append(cases, badCase{"duplicate member in " + obj, render(tree, "", obj), ""})
		}
		path := strings.Split(strings.TrimPrefix(obj+"/zz_unknown", "/"), "/")
		cases = append(cases, badCase{"unknown field in " + obj, rawAt(tree, path, `"`+phiMarker+`"`), ""})
	}
	for _, f := range fields {
		name := strings.ReplaceAll(strings.Join(f.path, "."), ".[", "[")
		if f.kind == reflect.String {
			for pattern, raw := range badUTF8 {
				cases = append(cases, badCase{name + ": invalid UTF-8 " + pattern, rawAt(tree, f.path, `"`+phiMarker+raw+`"`), ""})
			}
			cases = append(cases, badCase{name + ": a NUL", rawAt(tree, f.path, `"`+phiMarker+`\u0000"`), ""})
			long, _ := json.Marshal(phiMarker + strings.Repeat("é", 1000))
			cases = append(cases, badCase{name + ": over 1,000 characters", rawAt(tree, f.path, string(long)), ""},
				badCase{name + ": a number", rawAt(tree, f.path, "12345"), ""})
			if n, err := strconv.Atoi(f.tag.Get("maxLength")); err == nil {
				over, _ := json.Marshal(phiMarker + strings.Repeat("é", n+1-len(phiMarker)))
				cases = append(cases, badCase{name + ": over its maxLength", rawAt(tree, f.path, string(over)), ""})
			}
		} else {
			cases = append(cases, badCase{name + ": a string", rawAt(tree, f.path, `"`+phiMarker+`"`), ""})
		}
		if n, err := strconv.Atoi(f.tag.Get("maxItems")); err == nil && len(f.path) > 1 && f.path[len(f.path)-1] == "[0]" {
			items := strings.TrimSuffix(strings.Repeat(`"`+phiMarker+`",`, n+1), ",")
			cases = append(cases, badCase{name + ": over its maxItems", rawAt(tree, f.path[:len(f.path)-1], "["+items+"]"), ""})
		}
	}
	return cases
}

// formCases are the bad bodies for a form-encoded route whose valid body
// is example.
func formCases(example url.Values) []badCase {
	valid := example.Encode()
	name := "name"
	cases := []badCase{
		{"malformed percent-encoding", valid + "&" + name + "=%zz" + phiMarker, ""},
		{"semicolon separator", valid + ";" + name + "=" + phiMarker, ""},
		{"duplicate parameter", valid + "&" + url.Values{name: {phiMarker}}.Encode(), ""},
		{"unknown parameter", valid + "&zz_unknown=" + phiMarker, ""},
		{"invalid UTF-8 in a name", valid + "&k%FF=" + phiMarker, ""},
		{"over 1,000 characters", url.Values{name: {phiMarker + strings.Repeat("é", 1000)}}.Encode(), ""},
		{"_count a word", url.Values{"_count": {phiMarker}}.Encode(), ""},
		{"_count with a sign", url.Values{"_count": {"+5"}}.Encode(), ""},
		{"a NUL", url.Values{name: {phiMarker + "\x00"}}.Encode(), ""},
		{"JSON instead of a form", `{"name":"` + phiMarker + `"}`, ""},
		{"JSON content type", valid, "application/json"},
	}
	for pattern, raw := range badUTF8 {
		for param := range example {
			cases = append(cases, badCase{param + ": invalid UTF-8 " + pattern, url.Values{param: {phiMarker + raw}}.Encode(), ""})
		}
	}
	return cases
}

// baseQuery is what a route's URL needs besides its path ids to be valid:
// the FHIR searches of one patient's records require the patient.
func baseQuery(path string, c chart) string {
	for _, typ := range []string{"Observation", "MedicationRequest", "AllergyIntolerance", "Condition"} {
		if path == "/fhir/R4/"+typ {
			return "?patient=" + c.patient.String()
		}
	}
	return ""
}

// TestBadInputCorpus sends every route of the route table a corpus of bad
// bodies generated from its request type and example: malformed JSON,
// trailing data, invalid UTF-8 (each pattern the issue found) or a NUL in
// every string field, invalid UTF-8 in a member name, duplicate members in every object,
// nesting over 32, arrays over 100 items or their maxItems, strings over
// 1,000 characters or their maxLength, wrong types and unknown fields (for
// form bodies, their equivalents). Each is 400 with no PHI in the answer,
// and the tenant's events are not one more. A route added tomorrow is in
// the corpus by being in the table; its unmodified example must pass, so
// a refusal is the bad input's doing.
func TestBadInputCorpus(t *testing.T) {
	t.Parallel()
	e := newAPIEnvWith(t, withRateLimit(func(c *ratelimit.Config) {
		c.Tiers = map[chartstream.Tier]ratelimit.Limit{chartstream.TierStandard: {PerSecond: 100000, Burst: 100000}}
	}))
	c := e.newChart()
	e.project(c.tenant)
	before := e.eventCount(c.tenant)
	routes := e.server.RouteTable()
	total := 0
	for _, r := range routes {
		form := r.RequestType == "application/x-www-form-urlencoded"
		contentType := "application/json"
		var cases []badCase
		if form {
			contentType = r.RequestType
			cases = formCases(r.Example.(url.Values))
		} else {
			cases = jsonCases(r.Example, r.Request)
		}
		target := c.path(r.Path) + baseQuery(r.Path, c)
		token := c.token // a clinician's; a route clinicians may not use gets its roles'
		if !slices.Contains(r.Roles, chartstream.RoleClinician) {
			token = e.token(c.tenant, r.Roles...)
		}
		for _, bc := range cases {
			ct := contentType
			if bc.contentType != "" {
				ct = bc.contentType
			}
			got := e.do(r.Method, target, token, bc.body, "Content-Type", ct)
			total++
			switch {
			case got.Status != http.StatusBadRequest && !(bc.contentType != "" && got.Status == http.StatusUnsupportedMediaType):
				t.Errorf("%s %s, %s: %d, want 400: %.300s", r.Method, r.Path, bc.name, got.Status, got.Raw)
			case got.Problem.Type != api.ProblemType(chartstream.EINVALID) && got.Problem.Type != api.ProblemType(chartstream.EUNSUPPORTED):
				t.Errorf("%s %s, %s: problem %q: %.300s", r.Method, r.Path, bc.name, got.Problem.Type, got.Raw)
			case bytes.Contains(got.Raw, []byte(phiMarker)):
				t.Errorf("%s %s, %s: the answer repeats the input: %.300s", r.Method, r.Path, bc.name, got.Raw)
			}
		}
		if n := e.eventCount(c.tenant); n != before {
			t.Errorf("%s %s: %d events after its bad inputs, want %d", r.Method, r.Path, n, before)
			before = n
		}
	}
	t.Logf("%d bad requests to %d routes", total, len(routes))
	if total < 500 {
		t.Errorf("the corpus holds %d requests, fewer than expected: is it generating cases?", total)
	}
	// The unmodified requests are taken (whatever the domain then
	// decides), so each refusal above was the bad input's doing.
	for _, r := range routes {
		target := c.path(r.Path) + baseQuery(r.Path, c)
		var got reply
		switch {
		case r.RequestType != "":
			got = e.do(r.Method, target, c.token, r.Example.(url.Values).Encode(), "Content-Type", r.RequestType)
		default:
			got = e.do(r.Method, target, c.token, r.Example)
		}
		if got.Status == http.StatusBadRequest || got.Status >= 500 {
			t.Errorf("%s %s: its valid request answers %d: %.300s", r.Method, r.Path, got.Status, got.Raw)
		}
	}
}
