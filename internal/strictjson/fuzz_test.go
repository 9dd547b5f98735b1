package strictjson_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"testing"
	"unicode/utf8"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/strictjson"
)

// reason matches every reason Check and Decode give: fixed words and
// numbers, never a piece of the input.
var reason = regexp.MustCompile(`^(the body )?(has a member name that )?(` +
	`is not valid JSON|must be one JSON value with nothing after it|nests deeper than \d+ levels|` +
	`must have at most \d+ (items|members)|is given more than once|is not valid UTF-8|` +
	`has an unpaired UTF-16 surrogate escape|contains a NUL character|must be at most \d+ characters|is not a known field|` +
	`must be (a string|an object|an array|a number|true or false|a number in range|a whole number in range)|` +
	`must be (at least [-\d.e+]+)?( and )?(at most [-\d.e+]+)?|does not match the expected shape|cannot be decoded|` +
	`the request is invalid)$`)

// field matches the paths errors name: plain member names (which the
// input may have chosen, but never a value), ? for others, and indices.
var field = regexp.MustCompile(`^(([a-z0-9_]{1,64}|\?)(\[\d+\])*)?(\.([a-z0-9_]{1,64}|\?)(\[\d+\])*)*$|^(\[\d+\])+`)

// CheckError fails tb unless err is an EINVALID *chartstream.Error whose
// message, fields and reasons quote nothing of the input.
func checkError(tb testing.TB, err error) {
	tb.Helper()
	var e *chartstream.Error
	if !errors.As(err, &e) || e.Code != chartstream.EINVALID {
		tb.Fatalf("error %v (%T), want an EINVALID *chartstream.Error", err, err)
	}
	if !reason.MatchString(e.Message) {
		tb.Fatalf("message %q is not one of the fixed reasons", e.Message)
	}
	for _, f := range e.Fields {
		if !reason.MatchString(f.Reason) || !field.MatchString(f.Field) {
			tb.Fatalf("field error %+v is not a path and a fixed reason", f)
		}
	}
}

// FuzzDecode: Decode never panics; what it accepts is valid JSON that
// needs no repair and decodes the same after a round trip; what it refuses
// it refuses with a fixed, input-free reason.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var r request
		err := strictjson.Decode(data, &r, strictjson.Limits{})
		checked := strictjson.Check(data, strictjson.Limits{})
		if checked != nil {
			checkError(t, checked)
			if err == nil {
				t.Fatal("Decode accepted what Check refused")
			}
		} else {
			// Nothing to repair: encoding/json agrees, and its own
			// encoding of the value passes again.
			var v any
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.UseNumber()
			if !utf8.Valid(data) || dec.Decode(&v) != nil {
				t.Fatalf("Check accepted %q, which is not UTF-8 JSON", data)
			}
			again, _ := json.Marshal(v)
			if err := strictjson.Check(again, strictjson.Limits{}); err != nil {
				t.Fatalf("re-encoded %q refused: %v", again, err)
			}
		}
		if err != nil {
			checkError(t, err)
			return
		}
		first, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var r2 request
		if err := strictjson.Decode(first, &r2, strictjson.Limits{}); err != nil {
			t.Fatalf("re-encoded %s refused: %v", first, err)
		}
		if second, _ := json.Marshal(r2); string(second) != string(first) {
			t.Fatalf("round trip changed %s into %s", first, second)
		}
	})
}
