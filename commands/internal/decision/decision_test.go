package decision

import (
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

type noted struct {
	PatientID string `json:"patient_id"`
	Note      string `json:"note"`
}

func (noted) EventType() string { return "test.noted" }

func TestEncodeAttachesClaims(t *testing.T) {
	t.Parallel()
	stream := chartstream.StreamRef{Type: "test", ID: uuid.New()}
	events, err := Encode(chartstream.Metadata{Actor: "a"}, stream, []claiming{{MRN: "1"}})
	if err != nil || len(events) != 1 || len(events[0].Claims) != 1 || events[0].Metadata.Actor != "a" || events[0].Type != "test.claimed" {
		t.Fatalf("%+v, %v", events, err)
	}
	// Without a command id nothing fixes the id, but it is chosen here, so
	// the command's result can name its last event.
	again, _ := Encode(chartstream.Metadata{Actor: "a"}, stream, []claiming{{MRN: "1"}})
	if events[0].ID == uuid.Nil || events[0].ID == again[0].ID {
		t.Errorf("events without a command id got ids %s and %s, want two random ones", events[0].ID, again[0].ID)
	}
}

// A command id fixes its events' ids and its new ids, the same on every
// attempt and different for another command or stream.
func TestCommandIDsDeriveTheIDs(t *testing.T) {
	t.Parallel()
	md := chartstream.Metadata{CommandID: uuid.NewString()}
	other := chartstream.Metadata{CommandID: uuid.NewString()}
	stream := chartstream.StreamRef{Type: "test", ID: uuid.New()}
	a, _ := Encode(md, stream, []claiming{{MRN: "1"}, {MRN: "2"}})
	b, _ := Encode(md, stream, []claiming{{MRN: "1"}, {MRN: "2"}})
	c, _ := Encode(other, stream, []claiming{{MRN: "1"}})
	if a[0].ID == uuid.Nil || a[0].ID != b[0].ID || a[1].ID != b[1].ID || a[0].ID == a[1].ID || a[0].ID == c[0].ID {
		t.Errorf("event ids %s %s / %s %s / %s", a[0].ID, a[1].ID, b[0].ID, b[1].ID, c[0].ID)
	}
	if NewID(md, "patient") != NewID(md, "patient") || NewID(md, "patient") == NewID(md, "order") || NewID(md, "x") == NewID(other, "x") {
		t.Error("derived ids are not stable per command and name")
	}
	if NewID(chartstream.Metadata{}, "x") == NewID(chartstream.Metadata{}, "x") {
		t.Error("ids without a command id repeat")
	}
}

type claiming struct {
	MRN string `json:"mrn"`
}

func (claiming) EventType() string { return "test.claimed" }

func (c claiming) Claims() []chartstream.UniqueClaim {
	return []chartstream.UniqueClaim{{Scope: "test.mrn", Value: c.MRN}}
}

func TestVerifySpecsCatchesMisspeltFields(t *testing.T) {
	t.Parallel()
	good := []chartstream.EventSpec{{Type: "test.noted", SchemaVersion: 1, PHI: []string{"note"}, Subject: "patient_id"}}
	decode := func(e chartstream.Event) (noted, error) {
		var n noted
		err := Unmarshal(e, 1, &n)
		return n, err
	}
	if err := VerifySpecs(good, decode, noted{Note: "n"}); err != nil {
		t.Fatalf("good spec: %v", err)
	}
	for name, specs := range map[string][]chartstream.EventSpec{
		"misspelt PHI":      {{Type: "test.noted", SchemaVersion: 1, PHI: []string{"notes"}}},
		"misspelt subject":  {{Type: "test.noted", SchemaVersion: 1, Subject: "patient"}},
		"no spec":           {},
		"spec no sample":    {good[0], {Type: "test.other", SchemaVersion: 1}},
		"no schema version": {{Type: "test.noted"}},
		"newer than decode": {{Type: "test.noted", SchemaVersion: 2}},
	} {
		if VerifySpecs(specs, decode, noted{}) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
