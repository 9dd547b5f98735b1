package strictjson_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/strictjson"
)

// name and request are shaped like the API's request bodies.
type name struct {
	Family string   `json:"family" maxLength:"10"`
	Given  []string `json:"given,omitempty" maxItems:"3"`
}

type request struct {
	MRN     string     `json:"mrn"`
	Name    name       `json:"name"`
	Value   *float64   `json:"value,omitempty" minimum:"0"`
	Count   int        `json:"count,omitempty" minimum:"1" maximum:"5"`
	Done    bool       `json:"done,omitempty"`
	Ref     *uuid.UUID `json:"ref,omitempty"`
	Aliases []name     `json:"aliases,omitempty"`
	Extra   *struct {
		Note string `json:"note"`
	} `json:"extra,omitempty"`
}

// wantInvalid fails unless err is an EINVALID *chartstream.Error naming
// field ("" for the whole body) with a reason containing reason.
func wantInvalid(t *testing.T, err error, field, reason string) {
	t.Helper()
	var e *chartstream.Error
	if !errors.As(err, &e) || e.Code != chartstream.EINVALID {
		t.Fatalf("error %v, want an EINVALID *chartstream.Error", err)
	}
	if field == "" {
		if len(e.Fields) != 0 || !strings.Contains(e.Message, reason) {
			t.Errorf("error %+v, want no field and a message with %q", e, reason)
		}
		return
	}
	if len(e.Fields) != 1 || e.Fields[0].Field != field || !strings.Contains(e.Fields[0].Reason, reason) {
		t.Errorf("error fields %+v, want %s with %q", e.Fields, field, reason)
	}
}

func TestDecodeRefusesWhatEncodingJSONWouldRepair(t *testing.T) {
	t.Parallel()
	ok := `{"mrn":"A-1","name":{"family":"Lovelace","given":["Ada","B"]}}`
	cases := []struct {
		name, body, field, reason string
	}{
		{"trailing brace", ok + `}`, "", "nothing after"},
		{"second value", ok + ` {}`, "", "nothing after"},
		{"FF FE in a name", `{"name":{"family":"A` + "\xff\xfe" + `"}}`, "name.family", "UTF-8"},
		{"overlong", `{"mrn":"` + "\xc0\xaf" + `"}`, "mrn", "UTF-8"},
		{"surrogate bytes", `{"name":{"given":["Ada","` + "\xed\xa0\x80" + `"]}}`, "name.given[1]", "UTF-8"},
		{"truncated", `{"mrn":"A` + "\xc3" + `"}`, "mrn", "UTF-8"},
		{"lone high surrogate escape", `{"mrn":"\ud800"}`, "mrn", "surrogate"},
		{"lone low surrogate escape", `{"mrn":"\udc00x"}`, "mrn", "surrogate"},
		{"high then not low", `{"mrn":"\ud800\u0041"}`, "mrn", "surrogate"},
		{"invalid UTF-8 in a member name", `{"name":{"fam` + "\xff" + `":"x"}}`, "name", "member name that is not valid UTF-8"},
		{"duplicate member", `{"mrn":"A","mrn":"B"}`, "mrn", "more than once"},
		{"duplicate by escape", `{"mrn":"A","m\u0072n":"B"}`, "mrn", "more than once"},
		{"duplicate deep", `{"aliases":[{},{"family":"A","family":"B"}]}`, "aliases[1].family", "more than once"},
		{"other case", `{"MRN":"A"}`, "?", "not a known field"},
		{"unknown", `{"nickname":"A"}`, "nickname", "not a known field"},
		{"unknown deep", `{"name":{"middle":"A"}}`, "name.middle", "not a known field"},
		{"unplain unknown name not echoed", `{"Ada Lovelace":"A"}`, "?", "not a known field"},
		{"wrong type", `{"mrn":5}`, "mrn", "must be a string"},
		{"wrong type in array", `{"name":{"given":["A",5]}}`, "name.given[1]", "must be a string"},
		{"not an object", `[]`, "", "must be an object"},
		{"uuid not a string", `{"ref":5}`, "ref", "must be a string"},
		{"fraction for an int", `{"count":2.5}`, "count", "whole number"},
		{"huge number", `{"value":1e999}`, "value", "in range"},
		{"below minimum", `{"value":-1}`, "value", "at least 0"},
		{"above maximum", `{"count":6}`, "count", "at most 5"},
		{"maxLength", `{"name":{"family":"ABCDEFGHIJK"}}`, "name.family", "at most 10 characters"},
		{"maxItems", `{"name":{"given":["a","b","c","d"]}}`, "name.given", "at most 3 items"},
		{"string over the default", `{"mrn":"` + strings.Repeat("é", 1001) + `"}`, "mrn", "at most 1000 characters"},
		{"array over the default", `{"aliases":[` + strings.Repeat(`{},`, 100) + `{}]}`, "aliases", "at most 100 items"},
		{"33 levels", `{"extra":` + strings.Repeat(`[`, 32) + strings.Repeat(`]`, 32) + `}`, "extra" + strings.Repeat("[0]", 31), "deeper than 32"},
		{"very deep", strings.Repeat(`[`, 100000), strings.Repeat("[0]", 32), "deeper than 32"},
		{"malformed", `{"mrn":`, "mrn", "not valid JSON"},
		{"BOM", "\ufeff{}", "", "not valid JSON"},
		{"raw control character", "{\"mrn\":\"a\tb\"}", "mrn", "not valid JSON"},
		{"bad escape", `{"mrn":"\x"}`, "mrn", "not valid JSON"},
		{"NUL", `{"name":{"given":["a\u0000b"]}}`, "name.given[0]", "NUL"},
		{"NUL in a member name", `{"a\u0000":1}`, "", "NUL"},
		{"empty", ``, "", "not valid JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r request
			wantInvalid(t, strictjson.Decode([]byte(tc.body), &r, strictjson.Limits{}), tc.field, tc.reason)
		})
	}
}

func TestDecodeTakesValidInputAsIs(t *testing.T) {
	t.Parallel()
	deep := `{"extra":` + strings.Repeat(`[`, 31) + strings.Repeat(`]`, 31) + `}` // 32 levels with the body
	for _, body := range []string{
		`{"mrn":"A-1","name":{"family":"Lovelace","given":["Ada"]},"value":0,"count":5,"done":true}`,
		`{"mrn":"\ud83d\ude00 \u00e9\ufffd","name":null}`,
		"{\"mrn\":\"\xef\xbf\xbd\"}", // a real U+FFFD is fine
		`{"name":{"family":"` + strings.Repeat("é", 10) + `"}}`,
		`{"mrn":"` + strings.Repeat("é", 1000) + `"}`,
		" \t\r\n{}\n",
	} {
		var r request
		if err := strictjson.Decode([]byte(body), &r, strictjson.Limits{}); err != nil {
			t.Errorf("%.60s: %v", body, err)
		}
	}
	if err := strictjson.Check([]byte(deep), strictjson.Limits{}); err != nil {
		t.Errorf("32 levels: %v", err)
	}
	var r request
	if err := strictjson.Decode([]byte(`{"mrn":"\ud83d\ude00"}`), &r, strictjson.Limits{}); err != nil || r.MRN != "😀" {
		t.Errorf("surrogate pair: %q, %v", r.MRN, err)
	}
}
