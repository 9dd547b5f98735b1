package workers_test

import (
	"slices"
	"testing"
	"time"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/projections/chart"
)

// Erasing a patient shreds the key and takes the PHI out of the read
// models too, while the history stays whole and verifiable.
func TestErasePatientPurgesReadModelsAndKeepsHistory(t *testing.T) {
	t.Parallel()
	e := newProjectorEnv(t)
	id := e.clinic()
	e.start()
	e.publish(false)
	ctx, pool := testkit.Context(t), testkit.MustAppPool(t)
	waitUntil(t, 15*time.Second, "the chart is projected", func() bool {
		c, err := chart.PatientChart(ctx, pool, e.tenant, id)
		return err == nil && c.FamilyName != nil && len(c.Allergies) == 1
	})

	erase := commands.New(e.store, nil)
	md := chartstream.Metadata{Actor: "dpo-1"}
	if _, err := erase.Run(ctx, e.tenant, md, patient.ErasePatient{PatientID: id}); err != nil {
		t.Fatal(err)
	}
	// Run again, as after a failure between the event and the shredding.
	if _, err := erase.Run(ctx, e.tenant, md, patient.ErasePatient{PatientID: id}); err != nil {
		t.Fatalf("erasing again: %v", err)
	}
	e.publishAfter(patient.TypeErased)
	waitUntil(t, 15*time.Second, "the erasure is projected", func() bool {
		c, err := chart.PatientChart(ctx, pool, e.tenant, id)
		return err == nil && c.FamilyName == nil
	})
	c, err := chart.PatientChart(ctx, pool, e.tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.MRN != nil || c.GivenNames != nil || c.BirthDate != nil || c.Allergies[0].Reaction != nil {
		t.Errorf("PHI left in the chart after erasure: %+v", c)
	}
	if page, err := chart.SearchPatients(ctx, pool, e.tenant, chart.SearchParams{Name: "lovelace"}); err != nil || len(page.Items) != 0 {
		t.Errorf("search by name still finds the erased patient: %d, %v", len(page.Items), err)
	}

	events, err := e.store.ReadStream(ctx, e.tenant, patient.Stream(id), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(events[0].Erased, "name") || events[len(events)-1].Type != patient.TypeErased {
		t.Errorf("history after erasure: first event erased %v, last %s", events[0].Erased, events[len(events)-1].Type)
	}
	if n := count(events, patient.TypeErased); n != 1 {
		t.Errorf("%d erasure events, want 1", n)
	}
	report, err := e.store.Verify(ctx, e.tenant, eventstore.VerifyParams{})
	if err != nil || len(report.Broken) != 0 {
		t.Errorf("the chain does not verify after erasure: %+v %v", report.Broken, err)
	}
	_, err = commands.New(e.store, nil).Run(ctx, e.tenant, md, patient.RecordObservation{
		PatientID: id, Code: "8867-4", System: patient.LOINC, Value: ptr(70.0), Unit: "/min", EffectiveAt: "2026-11-26T11:00:00Z"})
	if chartstream.ErrorCode(err) != chartstream.EUNPROCESSABLE {
		t.Errorf("a command after erasure: %v, want EUNPROCESSABLE", err)
	}
}

func count(events []chartstream.Event, typ string) int {
	n := 0
	for _, e := range events {
		if e.Type == typ {
			n++
		}
	}
	return n
}
