// Package natsauth issues and revokes NATS credentials under decentralized
// (operator JWT) authentication: an operator signs accounts, an account's
// signing key signs its users, and the server checks every connection's
// user JWT against the account JWT its resolver holds. Users are issued
// without asking the server anything; revoking one updates the account
// JWT the server holds, over the system account, and the server closes the
// revoked user's connections. No restart, no configuration file to push.
//
// The platform runs in one account (Account, "CHARTSTREAM") with
// JetStream: the relay, projectors and de-identifier connect as its
// platform user, with every permission. External consumers are users of
// the same account whose permissions name one pre-created durable
// consumer (see ConsumerUser).
package natsauth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Account is the platform account's name.
const Account = "CHARTSTREAM"

// Files of a dev setup in its secrets directory (0700). Seeds (.nk) are
// secret; JWTs are not.
const (
	OperatorJWTFile        = "operator.jwt"
	OperatorSeedFile       = "operator.nk"
	OperatorSigningKeyFile = "operator-signing.nk"
	SystemAccountJWTFile   = "system-account.jwt"
	SystemAccountSeedFile  = "system-account.nk"
	SystemCredsFile        = "system.creds"
	AccountJWTFile         = "account.jwt"
	AccountSeedFile        = "account.nk"
	AccountSigningKeyFile  = "account-signing.nk"
	PlatformCredsFile      = "platform.creds"
)

// DevSetup creates, in secretsDir, a dev operator with a signing key, a
// system account and its user, the platform account (JetStream, no
// limits) with a signing key, and the platform user; then writes the
// server's authentication config to confPath (resolver state under
// resolverDir). Keys and JWTs made before are kept, never replaced: the
// server's resolver holds the account JWT with its revocations, and a
// newer preload would undo them. It reports whether it created the keys.
func DevSetup(secretsDir, confPath, resolverDir string) (bool, error) {
	if err := os.MkdirAll(secretsDir, 0o700); err != nil {
		return false, err
	}
	path := func(name string) string { return filepath.Join(secretsDir, name) }
	_, err := os.Stat(path(PlatformCredsFile))
	created := errors.Is(err, os.ErrNotExist)
	if created {
		if err := createDev(path); err != nil {
			return false, fmt.Errorf("nats dev keys: %w", err)
		}
	}
	conf, err := serverConfig(path, resolverDir)
	if err != nil {
		return false, fmt.Errorf("nats dev config: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(confPath), 0o755); err != nil {
		return false, err
	}
	return created, writeFile(confPath, conf, 0o644)
}

// createDev makes every key and JWT of a dev setup.
func createDev(path func(string) string) error {
	operator, _ := nkeys.CreateOperator()
	opSigning, _ := nkeys.CreateOperator()
	opPub, _ := operator.PublicKey()
	opSigningPub, _ := opSigning.PublicKey()
	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "chartstream-dev"
	oc.SigningKeys.Add(opSigningPub)
	sys, _ := nkeys.CreateAccount()
	sysPub, _ := sys.PublicKey()
	oc.SystemAccount = sysPub
	opJWT, err := oc.Encode(operator)
	if err != nil {
		return err
	}
	sysClaims := jwt.NewAccountClaims(sysPub)
	sysClaims.Name = "SYS"
	sysJWT, err := sysClaims.Encode(opSigning)
	if err != nil {
		return err
	}
	acct, _ := nkeys.CreateAccount()
	acctSigning, _ := nkeys.CreateAccount()
	acctPub, _ := acct.PublicKey()
	acctSigningPub, _ := acctSigning.PublicKey()
	ac := jwt.NewAccountClaims(acctPub)
	ac.Name = Account
	ac.SigningKeys.Add(acctSigningPub)
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit, Streams: jwt.NoLimit, Consumer: jwt.NoLimit}
	acctJWT, err := ac.Encode(opSigning)
	if err != nil {
		return err
	}
	sysCreds, err := userCreds(sys, sysPub, "system", nil)
	if err != nil {
		return err
	}
	platformCreds, err := userCreds(acctSigning, acctPub, "platform", nil)
	if err != nil {
		return err
	}
	seeds := map[string]nkeys.KeyPair{OperatorSeedFile: operator, OperatorSigningKeyFile: opSigning, SystemAccountSeedFile: sys,
		AccountSeedFile: acct, AccountSigningKeyFile: acctSigning}
	for name, kp := range seeds {
		seed, _ := kp.Seed()
		if err := writeFile(path(name), seed, 0o600); err != nil {
			return err
		}
	}
	// The platform creds go last: DevSetup takes them as the mark that
	// everything else exists.
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{OperatorJWTFile, []byte(opJWT), 0o644}, {SystemAccountJWTFile, []byte(sysJWT), 0o644}, {AccountJWTFile, []byte(acctJWT), 0o644},
		{SystemCredsFile, sysCreds, 0o600}, {PlatformCredsFile, platformCreds, 0o600}} {
		if err := writeFile(path(f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// userCreds issues a user of the account (signed by signer, the account's
// key or one of its signing keys) with the given permissions (nil: all),
// as a .creds file.
func userCreds(signer nkeys.KeyPair, account, name string, perms *jwt.Permissions) ([]byte, error) {
	user, _ := nkeys.CreateUser()
	userPub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(userPub)
	uc.Name = name
	if signerPub, _ := signer.PublicKey(); signerPub != account {
		uc.IssuerAccount = account
	}
	if perms != nil {
		uc.Permissions = *perms
	}
	userJWT, err := uc.Encode(signer)
	if err != nil {
		return nil, err
	}
	seed, _ := user.Seed()
	return jwt.FormatUserConfig(userJWT, seed)
}

// serverConfig is nats-server's authentication config: the operator, the
// system account, and a full resolver preloaded with both accounts.
func serverConfig(path func(string) string, resolverDir string) ([]byte, error) {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(path(name))
		return string(b), err
	}
	opJWT, err := read(OperatorJWTFile)
	if err != nil {
		return nil, err
	}
	sysJWT, err := read(SystemAccountJWTFile)
	if err != nil {
		return nil, err
	}
	acctJWT, err := read(AccountJWTFile)
	if err != nil {
		return nil, err
	}
	sys, err := jwt.DecodeAccountClaims(sysJWT)
	if err != nil {
		return nil, err
	}
	acct, err := jwt.DecodeAccountClaims(acctJWT)
	if err != nil {
		return nil, err
	}
	q := strconv.Quote
	conf := "# chartstream dev NATS authentication (written by chartstream dev init-nats)\n" +
		"operator: " + q(opJWT) + "\n" +
		"system_account: " + q(sys.Subject) + "\n" +
		"resolver: {\n  type: full\n  dir: " + q(resolverDir) + "\n  allow_delete: false\n  interval: \"2m\"\n}\n" +
		"resolver_preload: {\n  " + q(sys.Subject) + ": " + q(sysJWT) + "\n  " + q(acct.Subject) + ": " + q(acctJWT) + "\n}\n"
	return []byte(conf), nil
}

// writeFile writes data to path atomically with the given mode.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
