package main

import (
	"strings"
	"testing"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/testkit"
)

func TestPatientEraseCLI(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	store, err := newStore(testkit.MustAppPool(t), stackKeys(t), commands.EventSpecs(), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tenant := testkit.MustTenant(t)
	p, err := commands.New(store, nil).Run(ctx, tenant, chartstream.Metadata{Actor: "dr-cli"}, patient.RegisterPatient{
		MRN: "CLI-1", Name: patient.HumanName{Family: "Lovelace"}, BirthDate: "1990-01-02", Sex: "female"})
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"patient", "erase", "--tenant", tenant.String(), "--patient", p.ID.String()}
	if _, err := execute(testkit.Context(t), args...); err == nil || !strings.Contains(err.Error(), "--actor") {
		t.Errorf("erase without --actor: %v, want an error naming --actor", err)
	}
	for run := 1; run <= 2; run++ { // the second run finds it erased and shreds again
		out, err := execute(testkit.Context(t), append(args, "--actor", "dpo-1")...)
		if err != nil || !strings.Contains(out, "erased") {
			t.Fatalf("run %d: %q, %v", run, out, err)
		}
	}
	// A fresh store: this one's key cache still holds the key it used to
	// register the patient (other processes forget it within the TTL).
	fresh, err := newStore(testkit.MustAppPool(t), stackKeys(t), commands.EventSpecs(), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	events, err := fresh.ReadStream(ctx, tenant, patient.Stream(p.ID), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || len(events[0].Erased) == 0 || events[1].Metadata.Actor != "dpo-1" {
		t.Errorf("after erasure: %d events, first erased %v, erasure by %q", len(events), events[0].Erased, events[len(events)-1].Metadata.Actor)
	}
}
