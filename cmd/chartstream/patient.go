package main

import (
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/patient"
)

func newPatientCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "patient",
		Short: "Operator actions on a patient's record",
	}
	var keys phiKeys
	var dbURL, tenantArg, patientArg, actor string
	erase := &cobra.Command{
		Use:   "erase --tenant T --patient P --actor A",
		Short: "Erase a patient's record on request (crypto-shredding)",
		Long: `erase records that the patient's record was erased (an event without PHI,
naming the requesting operator), then destroys the patient's data key: the events
stay and still verify, their PHI reads as erased, the read models drop it as the
projector applies the erasure, and no further command may act on the patient.
Safe to run again after a failure.`,
		Args: badInput(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required([2]string{"DATABASE_URL", dbURL}, [2]string{"--tenant", tenantArg},
				[2]string{"--patient", patientArg}, [2]string{"--actor", actor}); err != nil {
				return err
			}
			tenant, err := chartstream.ParseTenantID(tenantArg)
			if err != nil {
				return errors.New("--tenant must be a tenant id (UUID)")
			}
			id, err := uuid.Parse(patientArg)
			if err != nil {
				return errors.New("--patient must be a patient id (UUID)")
			}
			store, pool, err := openStore(cmd.Context(), dbURL, keys, "chartstream-erase", commands.EventSpecs())
			if err != nil {
				return err
			}
			defer pool.Close()
			md := chartstream.Metadata{Actor: actor, Client: "chartstream-cli"}
			res, err := commands.New(store, nil).Run(cmd.Context(), tenant, md, patient.ErasePatient{PatientID: id})
			if err != nil {
				return describe(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "patient %s erased (stream version %d); data key destroyed\n", res.ID, res.Version)
			return nil
		},
	}
	stringFlag(erase.Flags(), &dbURL, "database-url", "DATABASE_URL", "", "PostgreSQL URL of the app role")
	phiKeyFlags(erase.Flags(), &keys)
	erase.Flags().StringVar(&tenantArg, "tenant", "", "tenant id")
	erase.Flags().StringVar(&patientArg, "patient", "", "patient id")
	erase.Flags().StringVar(&actor, "actor", "", "who requested the erasure (an operator id, recorded in the event)")
	cmd.AddCommand(erase)
	return cmd
}
