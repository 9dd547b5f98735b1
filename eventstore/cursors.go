package eventstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"strings"
	"sync"

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

// CursorCodec seals and opens one tenant's cursors. It is safe for
// concurrent use; an export seals every line's cursor with one, so Seal
// works in the codec's own buffers, under a lock no one else contends.
type CursorCodec struct {
	tenant chartstream.TenantID
	aead   cipher.AEAD

	mu     sync.Mutex
	nonce  hash.Hash // HMAC of the synthetic nonce
	plain  [16]byte
	sum    [sha256.Size]byte
	sealed [12 + 16 + 16]byte // nonce, ciphertext, tag
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
	if aead.NonceSize() != 12 || aead.Overhead() != 16 {
		return nil, errors.New("eventstore: cursor codec: unexpected AES-GCM sizes")
	}
	return &CursorCodec{tenant: tenant, aead: aead, nonce: hmac.New(sha256.New, derive("chartstream-cursor/v1 nonce"))}, nil
}

// Seal returns c's token: "c1." and URL-safe base64, 62 characters.
func (k *CursorCodec) Seal(c Cursor) string {
	var b [len(tokenPrefix) + 59]byte
	return string(k.AppendSeal(b[:0], c))
}

// AppendSeal appends c's token to dst: Seal without allocating.
func (k *CursorCodec) AppendSeal(dst []byte, c Cursor) []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	binary.BigEndian.PutUint64(k.plain[:8], uint64(c.TxID))
	binary.BigEndian.PutUint64(k.plain[8:], uint64(c.Position))
	k.nonce.Reset()
	k.nonce.Write(k.plain[:])
	nonce := k.nonce.Sum(k.sum[:0])[:12]
	copy(k.sealed[:12], nonce)
	k.aead.Seal(k.sealed[:12], nonce, k.plain[:], k.tenant[:])
	dst = append(dst, tokenPrefix...)
	return base64.RawURLEncoding.AppendEncode(dst, k.sealed[:])
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
