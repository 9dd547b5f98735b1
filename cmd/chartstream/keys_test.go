package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream/internal/awskms"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
)

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
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	k := testkit.MustLocalKMS(t)
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
