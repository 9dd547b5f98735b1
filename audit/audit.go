// Package audit is what auditors rely on: signed checkpoints over each
// tenant's history, the verification that compares the event store with
// them, and the export of the history (NDJSON or CSV) that an outside
// party can verify offline.
//
// The threat is an administrator with the database owner's rights: able
// to disable triggers and rewrite, delete or insert any row, and to run
// the database's own hash function. The event store chains each stream's
// events (migration 0002), but the owner can rewrite an event and
// recompute the rest of its stream's chain, or delete a stream's tail or
// a whole stream, and every chain still holds. So every few seconds the
// anchor worker (workers.Anchor) extends each tenant's running hash over
// all of its events in commit order (eventstore.Chain) and signs it, with
// its count and last position, using an Ed25519 key the database never
// sees; the checkpoint goes to a table and to the JetStream stream
// CLINICAL_ANCHORS, out of the owner's reach. Verification recomputes the
// chain from the data, trusting no stored hash, and compares it with the
// newest checkpoint whose signature verifies.
package audit

import (
	"errors"

	"github.com/chartstream/chartstream/eventstore"
)

// Signer signs a checkpoint's content: internal/signing.Signer with a key
// file in development, a KMS or HSM in production (the key provider).
type Signer interface {
	Sign(content []byte) string
}

// SignatureVerifier checks a signature made by Signer with the public
// key(s) it holds: internal/signing.Verifier.
type SignatureVerifier interface {
	Verify(content []byte, signature string) error
}

// Sign signs c in place.
func Sign(c *eventstore.Checkpoint, s Signer) {
	c.Signature = s.Sign(c.SignedContent())
}

// ErrBadSignature is a checkpoint whose signature does not verify: not
// signed by a trusted key, or changed since.
var ErrBadSignature = errors.New("audit: checkpoint signature does not verify")

// CheckSignature returns ErrBadSignature unless c's signature verifies.
func CheckSignature(c eventstore.Checkpoint, v SignatureVerifier) error {
	if len(c.Hash) != 32 || c.Seq < 1 || v.Verify(c.SignedContent(), c.Signature) != nil {
		return ErrBadSignature
	}
	return nil
}
