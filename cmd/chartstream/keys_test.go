package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/awskms"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
)

// mustKMSEnv starts local-kms and gives the AWS SDK credentials for it in
// the environment, as real ones would be given (so the test cannot be
// parallel).
func mustKMSEnv(t *testing.T) *testkit.LocalKMS {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	return testkit.MustLocalKMS(t)
}

// stackKeys is the local stack's PHI key provider (PHI_KEY_FILE).
func stackKeys(t *testing.T) phi.KeyProvider {
	t.Helper()
	keys, err := phiKeys{File: testkit.Env(t, "PHI_KEY_FILE")}.open(testkit.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestKeySettingsRefuse(t *testing.T) {
	t.Parallel()
	for name, tt := range map[string]struct {
		keys phiKeys
		want string
	}{
		"local without a file":  {phiKeys{Provider: keyProviderLocal}, "PHI_KEY_FILE is required"},
		"unknown provider":      {phiKeys{Provider: "vault", File: "x"}, "PHI_KEY_PROVIDER must be local or aws-kms"},
		"aws-kms without a key": {phiKeys{Provider: keyProviderAWSKMS, File: "x"}, "AWS_KMS_KEY_ID or AWS_KMS_KEY_ALIAS_TEMPLATE is required"},
	} {
		if err := tt.keys.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want %q", name, err, tt.want)
		}
	}
	if err := (phiKeys{Provider: keyProviderAWSKMS, KMS: awskms.Config{KeyID: "alias/phi"}}).Validate(); err != nil {
		t.Errorf("aws-kms with a key and no PHI_KEY_FILE: %v", err)
	}
}

// The process with PHI_KEY_PROVIDER=aws-kms (against local-kms): a
// patient's PHI is sealed under a KMS-made data key when the command
// commits, and opened through KMS by the projector and the read.
// Not parallel: the AWS SDK takes the emulator's credentials from the
// environment, as it would take real ones.
func TestEndToEndWithKMSKeys(t *testing.T) {
	k := mustKMSEnv(t)
	m := newTestMain(t, true, true, "")
	m.Config.Keys = phiKeys{Provider: keyProviderAWSKMS, KMS: awskms.Config{KeyID: "alias/chartstream-phi", Region: k.Region, Endpoint: k.Endpoint}}
	admin, err := awskms.New(testkit.Context(t), m.Config.Keys.KMS)
	if err != nil {
		t.Fatal(err)
	}
	key, err := admin.Client().CreateKey(testkit.Context(t), &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Client().CreateAlias(testkit.Context(t), &kms.CreateAliasInput{AliasName: aws.String("alias/chartstream-phi"), TargetKeyId: key.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	base := startMain(t, m)
	tenant := m.Config.Projector.Tenants[0]
	patientID := registerAndReadBack(t, clinicianSender(t, m, base, http.DefaultClient), "KMS-1")

	// The patient's data key is wrapped by KMS: the stack's local master
	// key cannot open it.
	var wrapped []byte
	err = postgres.InTenantTx(testkit.Context(t), testkit.MustAppPool(t), tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(testkit.Context(t), `SELECT wrapped FROM data_keys WHERE tenant_id = $1 AND subject_id = $2`, tenant, patientID).Scan(&wrapped)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UnwrapKey(testkit.Context(t), tenant, wrapped); err != nil {
		t.Errorf("the stored data key does not unwrap with KMS: %v", err)
	}
	if _, err := stackKeys(t).UnwrapKey(testkit.Context(t), tenant, wrapped); err == nil {
		t.Error("the stored data key unwraps with the local master key")
	}
}

// After the tenant's alias moves to a new KMS key, keys rewrap leaves
// nothing under the old key: with the old key disabled (as before its
// deletion), the patient's PHI and the tenant's claims key still open.
func TestKeysRewrapFreesTheOldKMSKey(t *testing.T) {
	k := mustKMSEnv(t)
	ctx := testkit.Context(t)
	keys := phiKeys{Provider: keyProviderAWSKMS, KMS: awskms.Config{KeyAliasTemplate: "alias/rewrap-{tenant}", Region: k.Region, Endpoint: k.Endpoint}}
	provider, err := awskms.New(ctx, keys.KMS)
	if err != nil {
		t.Fatal(err)
	}
	client := provider.Client()
	tenant := testkit.MustTenant(t)
	alias := aws.String(provider.KeyFor(tenant))
	oldKey, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: alias, TargetKeyId: oldKey.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	store, err := newStore(testkit.MustAppPool(t), provider, commands.EventSpecs(), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := commands.New(store, nil).Run(ctx, tenant, chartstream.Metadata{Actor: "dr-rewrap"}, patient.RegisterPatient{
		MRN: "RW-1", Name: patient.HumanName{Family: "Lovelace"}, BirthDate: "1990-01-02", Sex: "female"})
	if err != nil {
		t.Fatal(err)
	}

	newKey, err := client.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: alias, TargetKeyId: newKey.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	out, err := execute(ctx, "keys", "rewrap", "--tenant", tenant.String(), "--phi-key-provider", keyProviderAWSKMS,
		"--aws-kms-key-alias-template", keys.KMS.KeyAliasTemplate, "--aws-region", k.Region, "--aws-kms-endpoint", k.Endpoint)
	if err != nil || !strings.Contains(out, "2 keys wrapped again, 0 current already") {
		t.Fatalf("keys rewrap: %v\n%s", err, out)
	}
	if _, err := client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: oldKey.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	// A fresh store, with nothing cached: every key comes from KMS.
	fresh, err := newStore(testkit.MustAppPool(t), provider, commands.EventSpecs(), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	events, err := fresh.ReadStream(ctx, tenant, patient.Stream(p.ID), 1)
	if err != nil || len(events) != 1 || len(events[0].Erased) != 0 || !strings.Contains(string(events[0].Payload), "Lovelace") {
		t.Fatalf("the patient after rewrap and the old key disabled: %v, %d events", err, len(events))
	}
	if _, err := commands.New(fresh, nil).Run(ctx, tenant, chartstream.Metadata{Actor: "dr-rewrap"}, patient.RegisterPatient{
		MRN: "RW-2", Name: patient.HumanName{Family: "Hopper"}, BirthDate: "1906-12-09", Sex: "female"}); err != nil {
		t.Fatalf("a new patient (the claims key unwrapped) after rewrap: %v", err)
	}
}

// The local master key is retired the same way: keys rewrap from the old
// file to the new one, and the new one alone opens the patient's PHI and
// the tenant's claims key.
func TestKeysRewrapRetiresALocalMasterKey(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	dir := t.TempDir()
	oldFile, newFile := filepath.Join(dir, "old.key"), filepath.Join(dir, "new.key")
	for _, f := range []string{oldFile, newFile} {
		if _, err := phi.CreateLocalKeyFile(f); err != nil {
			t.Fatal(err)
		}
	}
	open := func(file string) *eventstore.Store {
		t.Helper()
		keys, err := phiKeys{File: file}.open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		store, err := newStore(testkit.MustAppPool(t), keys, commands.EventSpecs(), eventstore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return store
	}
	tenant := testkit.MustTenant(t)
	p, err := commands.New(open(oldFile), nil).Run(ctx, tenant, chartstream.Metadata{Actor: "dr-rewrap"}, patient.RegisterPatient{
		MRN: "RL-1", Name: patient.HumanName{Family: "Lovelace"}, BirthDate: "1990-01-02", Sex: "female"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := execute(ctx, "keys", "rewrap", "--tenant", tenant.String(), "--from-phi-key-file", oldFile, "--phi-key-file", newFile)
	if err != nil || !strings.Contains(out, "2 keys wrapped again, 0 current already") {
		t.Fatalf("keys rewrap: %v\n%s", err, out)
	}
	events, err := open(newFile).ReadStream(ctx, tenant, patient.Stream(p.ID), 1)
	if err != nil || len(events) != 1 || !strings.Contains(string(events[0].Payload), "Lovelace") {
		t.Fatalf("the patient under the new master key: %v", err)
	}
	if _, err := commands.New(open(newFile), nil).Run(ctx, tenant, chartstream.Metadata{Actor: "dr-rewrap"}, patient.RegisterPatient{
		MRN: "RL-2", Name: patient.HumanName{Family: "Hopper"}, BirthDate: "1906-12-09", Sex: "female"}); err != nil {
		t.Fatalf("a new patient (the claims key) under the new master key: %v", err)
	}
	if _, err := open(oldFile).ReadStream(ctx, tenant, patient.Stream(p.ID), 1); err == nil {
		t.Error("the retired master key still opens the patient's PHI")
	}
}
