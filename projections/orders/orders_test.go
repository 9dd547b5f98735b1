package orders_test

import (
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/medicationorder"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/internal/testkit"
	pt "github.com/chartstream/chartstream/projections/internal/projectiontest"
	"github.com/chartstream/chartstream/projections/orders"
)

func TestMedicationOrders(t *testing.T) {
	t.Parallel()
	env := pt.MustEnv(t)
	a, b := testkit.MustTenant(t), testkit.MustTenant(t)
	id, active, stopped := uuid.New(), uuid.New(), uuid.New()
	amox := patient.Coding{Code: "723", Display: "Amoxicillin", System: patient.RxNorm}
	prescribe := func(order uuid.UUID, then ...pt.Payload) []chartstream.Event {
		p := medicationorder.MedicationPrescribed{PatientID: id, Medication: amox, Dose: "500 mg", Route: "oral",
			Frequency: "TID", Prescriber: "dr-1", Override: &medicationorder.Override{Reason: "benefit outweighs risk"}}
		return env.Append(t, a, chartstream.StreamRef{Type: medicationorder.StreamType, ID: order}, append([]pt.Payload{p}, then...)...)
	}
	events := append(prescribe(active), prescribe(stopped, medicationorder.MedicationDiscontinued{PatientID: id, Reason: "rash"})...)
	env.ApplyAndCheck(t, orders.Projector{}, a, b, events...)

	for _, tc := range []struct {
		status string
		want   []uuid.UUID
	}{{orders.StatusActive, []uuid.UUID{active}}, {orders.StatusStopped, []uuid.UUID{stopped}}, {"", []uuid.UUID{active, stopped}}} {
		got, err := orders.MedicationOrders(env.Ctx, env.Pool, a, id, tc.status)
		if err != nil {
			t.Fatal(err)
		}
		var ids []uuid.UUID
		for _, o := range got {
			ids = append(ids, o.OrderID)
			if o.PatientID != id || o.Code != "723" || *o.Display != "Amoxicillin" || o.Dose != "500 mg" || *o.OverrideReason != "benefit outweighs risk" {
				t.Errorf("order %+v", o)
			}
			if stop := o.OrderID == stopped; stop != (o.DiscontinuedAt != nil) || stop != (o.DiscontinuedReason != nil) {
				t.Errorf("order %s: discontinued at %v for %v", o.OrderID, o.DiscontinuedAt, o.DiscontinuedReason)
			}
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("status %q: got %v, want %v", tc.status, ids, tc.want)
		}
		if got, err := orders.MedicationOrders(env.Ctx, env.Pool, b, id, tc.status); err != nil || got == nil || len(got) != 0 {
			t.Errorf("status %q in tenant B: got %v, %v; want an empty list", tc.status, got, err)
		}
	}
	if _, err := orders.MedicationOrders(env.Ctx, env.Pool, a, id, "paused"); chartstream.ErrorCode(err) != chartstream.EINVALID {
		t.Errorf("unknown status: got %v, want EINVALID", err)
	}
}
