package phi

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/chartstream/chartstream"
)

// patientPHI is a function, not a shared slice, so no test can alter another's input.
func patientPHI() []string { return []string{"name", "birth_date", "phone", "notes"} }

func TestSplitMerge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		payload   string
		wantClear string
		wantPHI   string // "" means nil: nothing to encrypt
		wantMerge string
	}{
		{
			name:      "moves present PHI, keeps order and values",
			payload:   `{"patient_id":"p1","name":{"given":"Ada","family":"Lovelace"},"mrn":"M-1","birth_date":"1815-12-10","score":1.50}`,
			wantClear: `{"patient_id":"p1","mrn":"M-1","score":1.50}`,
			wantPHI:   `{"name":{"given":"Ada","family":"Lovelace"},"birth_date":"1815-12-10"}`,
			wantMerge: `{"patient_id":"p1","mrn":"M-1","score":1.50,"name":{"given":"Ada","family":"Lovelace"},"birth_date":"1815-12-10"}`,
		},
		{
			name:      "null PHI stays in clear",
			payload:   `{"name":null,"notes":"call back","mrn":"M-1"}`,
			wantClear: `{"name":null,"mrn":"M-1"}`,
			wantPHI:   `{"notes":"call back"}`,
			wantMerge: `{"name":null,"mrn":"M-1","notes":"call back"}`,
		},
		{
			name:      "empty string and false are PHI values",
			payload:   `{"phone":"","notes":false}`,
			wantClear: `{}`,
			wantPHI:   `{"phone":"","notes":false}`,
			wantMerge: `{"phone":"","notes":false}`,
		},
		{
			name:      "no PHI present",
			payload:   `{"mrn":"M-1","tags":["a","b"]}`,
			wantClear: `{"mrn":"M-1","tags":["a","b"]}`,
			wantMerge: `{"mrn":"M-1","tags":["a","b"]}`,
		},
		{
			name:      "empty object",
			payload:   `{}`,
			wantClear: `{}`,
			wantMerge: `{}`,
		},
		{
			name:      "whitespace and number precision survive",
			payload:   " {\n \"n\" : 12345678901234567890 ,\"name\" : [ 1, 2 ] }\n",
			wantClear: `{"n":12345678901234567890}`,
			wantPHI:   `{"name":[ 1, 2 ]}`,
			wantMerge: `{"n":12345678901234567890,"name":[ 1, 2 ]}`,
		},
		{
			name:      "nested field with a PHI name is not top-level",
			payload:   `{"contact":{"name":"Bob"}}`,
			wantClear: `{"contact":{"name":"Bob"}}`,
			wantMerge: `{"contact":{"name":"Bob"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clearPart, phiPart, err := Split(json.RawMessage(tt.payload), patientPHI())
			if err != nil {
				t.Fatal(err)
			}
			if string(clearPart) != tt.wantClear {
				t.Errorf("clear = %s; want %s", clearPart, tt.wantClear)
			}
			if tt.wantPHI == "" && phiPart != nil || string(phiPart) != tt.wantPHI {
				t.Errorf("phi = %q; want %q", phiPart, tt.wantPHI)
			}
			merged, err := Merge(clearPart, phiPart)
			if err != nil {
				t.Fatal(err)
			}
			if string(merged) != tt.wantMerge {
				t.Errorf("merged = %s; want %s", merged, tt.wantMerge)
			}
			assertSameJSON(t, merged, json.RawMessage(tt.payload))
		})
	}
}

func assertSameJSON(t *testing.T, got, want json.RawMessage) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("merged payload means %s; original means %s", gb, wb)
	}
}

func TestSplitRejectsNonObjects(t *testing.T) {
	t.Parallel()
	for _, payload := range []string{
		``, `null`, `[]`, `"Ada Lovelace"`, `42`, `{`, `{"a":}`, `{"a":1}{}`, `{"a":1} x`,
		`{"name":"Ada","name":"Eve"}`, // a duplicate would smuggle PHI past the split
		`{"a":1,"a":2}`,
	} {
		_, _, err := Split(json.RawMessage(payload), patientPHI())
		if code := chartstream.ErrorCode(err); code != chartstream.EINVALID {
			t.Errorf("Split(%q): code %q (err %v); want EINVALID", payload, code, err)
			continue
		}
		if strings.Contains(err.Error(), "Ada") || strings.Contains(err.Error(), "Eve") {
			t.Errorf("Split(%q): error echoes the payload: %v", payload, err)
		}
	}
}

func TestMergeRejects(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, clear, phi string }{
		{"clear not an object", `[1]`, `{"name":"Ada"}`},
		{"phi not an object", `{"mrn":"M-1"}`, `"Ada"`},
		{"phi is null", `{"mrn":"M-1"}`, `null`},
		{"field in both parts", `{"name":null}`, `{"name":"Ada"}`},
	}
	for _, tt := range tests {
		_, err := Merge(json.RawMessage(tt.clear), json.RawMessage(tt.phi))
		var cerr *chartstream.Error
		if !errors.As(err, &cerr) || cerr.Code != chartstream.EINVALID {
			t.Errorf("%s: err = %v; want EINVALID", tt.name, err)
		}
	}
}

func TestErase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		clear      string
		fields     []string
		wantClear  string
		wantErased []string
	}{
		{
			name:       "absent PHI fields become null and are listed",
			clear:      `{"patient_id":"p1","mrn":"M-1"}`,
			fields:     patientPHI(),
			wantClear:  `{"patient_id":"p1","mrn":"M-1","name":null,"birth_date":null,"phone":null,"notes":null}`,
			wantErased: patientPHI(),
		},
		{
			name:       "fields still in the clear part were null, not erased",
			clear:      `{"name":null,"mrn":"M-1"}`,
			fields:     patientPHI(),
			wantClear:  `{"name":null,"mrn":"M-1","birth_date":null,"phone":null,"notes":null}`,
			wantErased: []string{"birth_date", "phone", "notes"},
		},
		{
			name:       "recorded list of encrypted fields",
			clear:      `{"mrn":"M-1"}`,
			fields:     []string{"notes", "notes"},
			wantClear:  `{"mrn":"M-1","notes":null}`,
			wantErased: []string{"notes"},
		},
		{
			name:      "no PHI fields",
			clear:     `{"mrn":"M-1"}`,
			wantClear: `{"mrn":"M-1"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, erased, err := Erase(json.RawMessage(tt.clear), tt.fields)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.wantClear {
				t.Errorf("payload = %s; want %s", got, tt.wantClear)
			}
			if !slices.Equal(erased, tt.wantErased) {
				t.Errorf("erased = %v; want %v", erased, tt.wantErased)
			}
		})
	}
	if _, _, err := Erase(json.RawMessage(`"x"`), patientPHI()); chartstream.ErrorCode(err) != chartstream.EINVALID {
		t.Errorf("non-object: err = %v; want EINVALID", err)
	}
}
