package eventstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"

	"github.com/chartstream/chartstream"
)

// Cursors in what a tenant is answered: a Cursor is where an event is in
// the commit order of every tenant, so its numbers would let a tenant
// count the others' writes between two of its own. What leaves the
// platform (exports, histories, time travel, checkpoints) carries it
// sealed instead, under a key of the tenant's own: opaque, bound to the
// tenant, and deterministic, so that the same event always has the same
// token and an export can be checked against a checkpoint offline by
// comparing tokens.

// cursorsKeyPurpose names the tenant key cursors are sealed under.
const cursorsKeyPurpose = "cursors"

// tokenPrefix starts every sealed cursor: its format's version.
const tokenPrefix = "c1."

// CursorCodec seals and opens one tenant's cursors.
type CursorCodec struct {
	tenant chartstream.TenantID
	nonce  []byte // HMAC key of the synthetic nonce
	aead   cipher.AEAD
}

// CursorCodec returns the tenant's codec, its key made on first use.
// ENOTFOUND for an unknown tenant.
func (s *Store) CursorCodec(ctx context.Context, tenant chartstream.TenantID) (*CursorCodec, error) {
	key, err := s.tenantKey(ctx, tenant, cursorsKeyPurpose)
	if err != nil {
		return nil, err
	}
	return NewCursorCodec(tenant, key)
}

// NewCursorCodec returns the codec of tenant under key (32 bytes or more):
// AES-256-GCM with a synthetic nonce, an HMAC of the cursor, as in SIV. A
// nonce repeats only with its cursor, which then seals to the same token:
// that is the determinism wanted, and all it reveals.
func NewCursorCodec(tenant chartstream.TenantID, key []byte) (*CursorCodec, error) {
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	block, err := aes.NewCipher(derive("chartstream-cursor/v1 encryption"))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &CursorCodec{tenant: tenant, nonce: derive("chartstream-cursor/v1 nonce"), aead: aead}, nil
}

// Seal returns c's token: "c1." and URL-safe base64, 62 characters.
func (k *CursorCodec) Seal(c Cursor) string {
	var plain [16]byte
	binary.BigEndian.PutUint64(plain[:8], uint64(c.TxID))
	binary.BigEndian.PutUint64(plain[8:], uint64(c.Position))
	m := hmac.New(sha256.New, k.nonce)
	m.Write(plain[:])
	nonce := m.Sum(nil)[:k.aead.NonceSize()]
	sealed := k.aead.Seal(nonce, nonce, plain[:], k.tenant[:])
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(sealed)
}

// Open returns the cursor token t seals. A token not sealed by Seal for
// this tenant, or changed, is EINVALID.
func (k *CursorCodec) Open(t string) (Cursor, error) {
	bad := chartstream.Errorf(chartstream.EINVALID, "not a cursor of this tenant")
	rest, ok := strings.CutPrefix(t, tokenPrefix)
	if !ok {
		return Cursor{}, bad
	}
	sealed, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	n := k.aead.NonceSize()
	if err != nil || len(sealed) != n+16+k.aead.Overhead() {
		return Cursor{}, bad
	}
	plain, err := k.aead.Open(nil, sealed[:n], sealed[n:], k.tenant[:])
	if err != nil {
		return Cursor{}, bad
	}
	c := Cursor{TxID: int64(binary.BigEndian.Uint64(plain[:8])), Position: int64(binary.BigEndian.Uint64(plain[8:]))}
	if c.TxID < 0 || c.Position < 0 || k.Seal(c) != t {
		return Cursor{}, bad
	}
	return c, nil
}
