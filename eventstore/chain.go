package eventstore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

// Hash is a SHA-256 digest, hex in JSON and text.
type Hash []byte

// MarshalText implements encoding.TextMarshaler.
func (h Hash) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := hex.DecodeString(string(b))
	if err != nil || (len(v) != 0 && len(v) != sha256.Size) {
		return errors.New("hash must be 64 hex digits")
	}
	*h = v
	return nil
}

// StoredEvent is an event as stored: the fields its hash covers in the
// form the hash covers them (payload and metadata in PostgreSQL's
// canonical jsonb text, PHI as ciphertext), where it is in commit order,
// and its hash and its predecessor's in its stream.
type StoredEvent struct {
	Position, TxID int64
	Tenant         chartstream.TenantID
	StreamType     string
	StreamID       uuid.UUID
	Version        int64
	EventID        uuid.UUID
	EventType      string
	SchemaVersion  int32
	Payload        []byte
	// PHI is the sealed PHI, nil for none; Subject is whose key sealed it.
	PHI            []byte
	Subject        uuid.NullUUID
	Metadata       []byte
	RecordedMicros int64
	PrevHash, Hash Hash
}

// Cursor is where the event is in commit order.
func (e *StoredEvent) Cursor() Cursor { return Cursor{TxID: e.TxID, Position: e.Position} }

// RecordedAt is the event's recorded time (microseconds, as stored).
func (e *StoredEvent) RecordedAt() time.Time { return time.UnixMicro(e.RecordedMicros).UTC() }

// ComputeHash is the Go twin of chartstream_event_hash (migration 0002):
// SHA-256 over the previous event's hash in the stream (nil for version 1)
// and each field, length-prefixed. h is reset and reused.
func (e *StoredEvent) ComputeHash(h hash.Hash, prev []byte) Hash {
	h.Reset()
	h.Write(prev)
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint32(n[:4], uint32(len(b)))
		h.Write(n[:4])
		h.Write(b)
	}
	i64 := func(v int64) {
		binary.BigEndian.PutUint32(n[:4], 8)
		h.Write(n[:4])
		binary.BigEndian.PutUint64(n[:], uint64(v))
		h.Write(n[:])
	}
	field(e.Tenant[:])
	field([]byte(e.StreamType))
	field(e.StreamID[:])
	i64(e.Version)
	field(e.EventID[:])
	field([]byte(e.EventType))
	var sv [4]byte
	binary.BigEndian.PutUint32(sv[:], uint32(e.SchemaVersion))
	field(sv[:])
	field(e.Payload)
	field(e.PHI)
	if e.Subject.Valid {
		field(e.Subject.UUID[:])
	} else {
		field(nil)
	}
	field(e.Metadata)
	i64(e.RecordedMicros)
	return h.Sum(nil)
}

// Chain is the running hash over all of a tenant's events in commit order
// (transaction id, position): each event extends it with its hash, which
// covers its content and, through its stream's chain, every event before
// it in the stream. A deleted, added, reordered or rewritten event
// anywhere changes it, even when the attacker re-chained the stream with
// the database's own hash function. Extending it costs one SHA-256 per
// event, so it is kept incrementally. Where the events are in the commit
// order of all tenants is not hashed (version 2): an export, which
// carries no global position, can be checked against it offline.
type Chain struct {
	// Events is how many events it covers.
	Events int64 `json:"events"`
	// Last is the last event's cursor (zero for none). It never leaves
	// the platform: a Checkpoint signs it sealed (LastToken) and keeps it
	// open, unsigned, where only the platform reads it (its table row, a
	// header of its message on CLINICAL_ANCHORS), for verification to
	// know where to stop without holding the tenant's key.
	Last Cursor `json:"-"`
	// Hash is the running hash.
	Hash Hash `json:"hash"`
}

// chainDomain starts every tenant's chain, so no two tenants' empty chains
// are alike.
const chainDomain = "chartstream-chain/v2"

// NewChain returns the empty chain of tenant.
func NewChain(tenant chartstream.TenantID) Chain {
	h := sha256.New()
	h.Write([]byte(chainDomain))
	h.Write(tenant[:])
	return Chain{Hash: h.Sum(nil)}
}

// Add extends the chain with the event at c whose hash is eventHash.
func (ch *Chain) Add(c Cursor, eventHash []byte) {
	var buf [sha256.Size + sha256.Size]byte
	copy(buf[:sha256.Size], ch.Hash)
	copy(buf[sha256.Size:], eventHash)
	sum := sha256.Sum256(buf[:])
	if len(ch.Hash) != sha256.Size {
		ch.Hash = make(Hash, sha256.Size)
	}
	copy(ch.Hash, sum[:])
	ch.Events++
	ch.Last = c
}

// Checkpoint is a signed statement of a tenant's chain: "up to Last, the
// tenant had Events events, and their running hash was Hash". The anchor
// worker signs it with a key the database never sees; the signature
// covers SignedContent.
type Checkpoint struct {
	Tenant chartstream.TenantID `json:"tenant_id"`
	// Seq numbers the tenant's checkpoints 1, 2, 3, ...
	Seq   int64 `json:"seq"`
	Chain       // events, hash (and Last, which stays inside)
	// LastToken is Last sealed with the tenant's CursorCodec ("" for no
	// events): what the signature covers and an export's lines carry.
	LastToken string    `json:"last"`
	SignedAt  time.Time `json:"signed_at"`
	// Signature is "<key id>:<base64 Ed25519 signature>" (internal/signing).
	Signature string `json:"signature"`
}

// checkpointDomain starts every signed checkpoint.
const checkpointDomain = "chartstream-checkpoint/v2"

// SignedContent is what the signature covers: every field but the
// signature itself (the last event's cursor sealed), one per line, the
// time in microseconds.
func (c Checkpoint) SignedContent() []byte {
	return fmt.Appendf(nil, "%s\ntenant %s\nseq %d\nevents %d\nlast %s\nhash %x\nsigned_at %d\n",
		checkpointDomain, c.Tenant, c.Seq, c.Events, c.LastToken, []byte(c.Hash), c.SignedAt.UnixMicro())
}

// String is the cursor as "<txid>.<position>", how exports name it.
func (a Cursor) String() string {
	return strconv.FormatInt(a.TxID, 10) + "." + strconv.FormatInt(a.Position, 10)
}

// ParseCursor parses a cursor written by Cursor.String. Errors: EINVALID.
func ParseCursor(s string) (Cursor, error) {
	tx, pos, ok := strings.Cut(s, ".")
	t, err1 := strconv.ParseInt(tx, 10, 64)
	p, err2 := strconv.ParseInt(pos, 10, 64)
	if !ok || err1 != nil || err2 != nil || t < 0 || p < 0 {
		return Cursor{}, chartstream.Errorf(chartstream.EINVALID, "a cursor is <txid>.<position>, two non-negative integers")
	}
	return Cursor{TxID: t, Position: p}, nil
}
