package natsauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ConsumerUser is an external consumer's user: it may pull from one
// durable consumer of one stream, acknowledge what it got, and read that
// consumer's own info, nothing else.
//
// Why a pre-created durable consumer and not an account per tenant:
// JetStream's API is reached by publishing to $JS.API.> subjects, so a
// user allowed to subscribe only to its tenant's subjects could still ask
// for stream info, a direct get, a message get or a consumer of its own
// with any filter (nats-server issues 3295 and 6180). Denying the whole
// API but the pull (MSG.NEXT) and acknowledgement ($JS.ACK) subjects of a
// consumer the platform created, filtered to the tenant's subjects, leaves
// no route to another tenant's messages; the data stays in one stream
// instead of being sourced into a stream per tenant. Replies come to an
// inbox prefix of the user's own (InboxPrefix), which no other user may
// subscribe to.
type ConsumerUser struct {
	// Name names the user in its JWT (for the server's logs).
	Name string
	// Stream and Consumer are the durable consumer the user reads.
	Stream, Consumer string
	// InboxPrefix is where the user's replies come; the client must use
	// it (nats.CustomInboxPrefix).
	InboxPrefix string
}

// InboxPrefix is the inbox prefix of a consumer's user.
func InboxPrefix(consumer string) string { return "_INBOX_" + consumer }

// permissions are a consumer user's only rights.
func (u ConsumerUser) permissions() *jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add(
		"$JS.API.CONSUMER.MSG.NEXT."+u.Stream+"."+u.Consumer,
		"$JS.API.CONSUMER.INFO."+u.Stream+"."+u.Consumer,
		"$JS.ACK."+u.Stream+"."+u.Consumer+".>",
	)
	p.Sub.Allow.Add(u.InboxPrefix + ".>")
	return &p
}

// Issuer signs users of the platform account with one of its signing keys.
type Issuer struct {
	signer  nkeys.KeyPair
	account string
}

// LoadIssuer reads the account signing key (an NKey seed file) and the
// platform user's creds, whose JWT names the account.
func LoadIssuer(signingKeyFile, platformCredsFile string) (*Issuer, error) {
	seed, err := os.ReadFile(signingKeyFile)
	if err != nil {
		return nil, fmt.Errorf("account signing key: %w", err)
	}
	signer, err := nkeys.FromSeed(trimSeed(seed))
	if err != nil {
		return nil, fmt.Errorf("account signing key %s: %w", filepath.Base(signingKeyFile), err)
	}
	account, err := credsAccount(platformCredsFile)
	if err != nil {
		return nil, err
	}
	return &Issuer{signer: signer, account: account}, nil
}

// Account is the public key of the account the issuer signs users of.
func (i *Issuer) Account() string { return i.account }

// Issue returns a new user's .creds file (its JWT and NKey seed, to hand
// to the consumer) and its public key (to revoke it by).
func (i *Issuer) Issue(u ConsumerUser) (creds []byte, userKey string, err error) {
	user, err := nkeys.CreateUser()
	if err != nil {
		return nil, "", err
	}
	userKey, _ = user.PublicKey()
	uc := jwt.NewUserClaims(userKey)
	uc.Name = u.Name
	uc.IssuerAccount = i.account
	uc.Permissions = *u.permissions()
	uc.AllowedConnectionTypes.Add(jwt.ConnectionTypeStandard)
	uc.Limits.Subs, uc.Limits.Payload = 64, 1<<20
	userJWT, err := uc.Encode(i.signer)
	if err != nil {
		return nil, "", fmt.Errorf("sign user: %w", err)
	}
	seed, _ := user.Seed()
	creds, err = jwt.FormatUserConfig(userJWT, seed)
	return creds, userKey, err
}

// Revoker revokes users: it updates the account JWT the servers hold,
// signed with an operator signing key, over a system account connection.
type Revoker struct {
	sys      *nats.Conn
	operator nkeys.KeyPair
}

// NewRevoker returns a revoker on sys, a connection as the system
// account's user, signing with the operator signing key in seedFile.
func NewRevoker(sys *nats.Conn, seedFile string) (*Revoker, error) {
	seed, err := os.ReadFile(seedFile)
	if err != nil {
		return nil, fmt.Errorf("operator signing key: %w", err)
	}
	kp, err := nkeys.FromSeed(trimSeed(seed))
	if err != nil {
		return nil, fmt.Errorf("operator signing key %s: %w", filepath.Base(seedFile), err)
	}
	return &Revoker{sys: sys, operator: kp}, nil
}

// Revoke revokes userKey in account: from the update on, the servers
// refuse its connections and close those it has.
func (r *Revoker) Revoke(ctx context.Context, account, userKey string) error {
	msg, err := r.sys.RequestWithContext(ctx, "$SYS.REQ.ACCOUNT."+account+".CLAIMS.LOOKUP", nil)
	if err != nil {
		return fmt.Errorf("look up the account JWT: %w", err)
	}
	claims, err := jwt.DecodeAccountClaims(string(msg.Data))
	if err != nil {
		return fmt.Errorf("the servers' account JWT: %w", err)
	}
	// A second later than the user's JWT could have been issued, so the
	// revocation covers it (times are whole seconds).
	claims.RevokeAt(userKey, time.Now().Add(time.Second))
	updated, err := claims.Encode(r.operator)
	if err != nil {
		return fmt.Errorf("sign the account JWT: %w", err)
	}
	msg, err = r.sys.RequestWithContext(ctx, "$SYS.REQ.CLAIMS.UPDATE", []byte(updated))
	if err != nil {
		return fmt.Errorf("update the account JWT: %w", err)
	}
	var resp struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("update the account JWT: %w", err)
	}
	if resp.Error != nil {
		return fmt.Errorf("update the account JWT: %s", resp.Error.Description)
	}
	return nil
}

// credsAccount reads the account a .creds file's user belongs to.
func credsAccount(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("platform creds: %w", err)
	}
	token, err := jwt.ParseDecoratedJWT(raw)
	if err != nil {
		return "", fmt.Errorf("platform creds %s: %w", filepath.Base(path), err)
	}
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return "", fmt.Errorf("platform creds %s: %w", filepath.Base(path), err)
	}
	if uc.IssuerAccount != "" {
		return uc.IssuerAccount, nil
	}
	if uc.Issuer == "" {
		return "", errors.New("platform creds name no account")
	}
	return uc.Issuer, nil
}

// trimSeed drops the whitespace around a seed read from a file.
func trimSeed(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
