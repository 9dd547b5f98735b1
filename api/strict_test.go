package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/chartstream/chartstream"
)

// badUTF8 are the byte sequences the issue found rewritten to U+FFFD:
// bytes that never occur in UTF-8, an overlong encoding of '/', a UTF-16
// surrogate encoded as UTF-8, and a sequence cut short.
var badUTF8 = map[string]string{
	"FF FE":     "\xff\xfe",
	"overlong":  "\xc0\xaf",
	"surrogate": "\xed\xa0\x80",
	"truncated": "\xc3",
}

// marker stands for a value in a body built by withRaw.
const marker = "@@VALUE@@"

// withRaw encodes body, whose one string marker is then replaced by raw,
// bytes JSON encoding would have escaped or repaired.
func withRaw(t *testing.T, body any, raw string) string {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(b, []byte(marker)) != 1 {
		t.Fatalf("body %s holds the marker %d times, want once", b, bytes.Count(b, []byte(marker)))
	}
	return string(bytes.Replace(b, []byte(marker), []byte(raw), 1))
}

// The issue: a registration or an observation with an extra closing brace
// was recorded (201). Now it is 400 and nothing is written.
func TestTrailingDataIsRefused(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	before := e.eventCount(c.tenant)
	reg, _ := json.Marshal(newPatient())
	obs, _ := json.Marshal(map[string]any{"code": "8867-4", "system": "http://loinc.org", "value": 72, "unit": "/min", "effective_at": "2026-11-26T10:00:00Z"})
	for _, tc := range []struct{ path, body string }{
		{"/v1/patients", string(reg) + "}"},
		{"/v1/patients", string(reg) + `{"mrn":"X"}`},
		{"/v1/patients/" + c.patient.String() + "/observations", string(obs) + "}"},
		{"/v1/patients/" + c.patient.String() + "/observations", string(obs) + " []"},
	} {
		r := e.do(http.MethodPost, tc.path, c.token, tc.body).wantProblem(t, http.StatusBadRequest, chartstream.EINVALID)
		if !strings.Contains(r.Problem.Detail, "nothing after it") {
			t.Errorf("%s with trailing data: detail %q does not say so", tc.path, r.Problem.Detail)
		}
	}
	e.wantEvents(c.tenant, before, "after bodies with trailing data")
}

// The issue: invalid UTF-8 in a name, an MRN, a unit or a code was
// replaced by U+FFFD and recorded. Now each is 400 naming the field, and
// nothing is written.
func TestInvalidUTF8IsRefusedNotRewritten(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	c := e.newChart()
	obsPath := "/v1/patients/" + c.patient.String() + "/observations"
	registration := func(edit func(map[string]any)) map[string]any {
		b := newPatient()
		edit(b)
		return b
	}
	observation := func(edit func(map[string]any)) map[string]any {
		o := map[string]any{"code": "8867-4", "system": "http://loinc.org", "value": 72, "unit": "/min", "effective_at": "2026-11-26T10:00:00Z"}
		edit(o)
		return o
	}
	fields := []struct {
		field, path string
		body        any
	}{
		{"name.family", "/v1/patients", registration(func(b map[string]any) { b["name"] = map[string]any{"family": "Lo" + marker} })},
		{"name.given[1]", "/v1/patients", registration(func(b map[string]any) {
			b["name"] = map[string]any{"family": "Lovelace", "given": []string{"Ada", marker}}
		})},
		{"mrn", "/v1/patients", registration(func(b map[string]any) { b["mrn"] = "MRN-" + marker })},
		{"unit", obsPath, observation(func(o map[string]any) { o["unit"] = "mmol" + marker })},
		{"code", obsPath, observation(func(o map[string]any) { o["code"] = "8867" + marker })},
	}
	before := e.eventCount(c.tenant)
	for _, f := range fields {
		for name, raw := range badUTF8 {
			t.Run(f.field+" "+name, func(t *testing.T) {
				e.do(http.MethodPost, f.path, c.token, withRaw(t, f.body, raw)).
					wantProblem(t, http.StatusBadRequest, chartstream.EINVALID).wantField(t, f.field)
			})
		}
	}
	e.wantEvents(c.tenant, before, "after bodies with invalid UTF-8")
}
