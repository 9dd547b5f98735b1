package phi

import "errors"

// Sentinel errors. Match them with errors.Is; the returned errors wrap them
// with PHI-free, key-free context. None of them is a *chartstream.Error, so
// the API renders them as internal errors unless the caller maps them.
var (
	// ErrDecrypt means ciphertext or a wrapped key did not authenticate: it
	// was tampered with, truncated, moved to another event or tenant, or
	// opened with the wrong key. It signals corruption or an attack, never
	// a shredded key, and must not be turned into an erased read.
	ErrDecrypt = errors.New("phi: decryption failed")

	// ErrKeyDestroyed means the key needed to decrypt has been destroyed on
	// purpose (crypto-shredding). A KeyProvider returns it when the
	// tenant's KEK is gone; the event store returns it when the subject's
	// wrapped DEK is gone. Readers answer it with Erase.
	ErrKeyDestroyed = errors.New("phi: key destroyed")

	// ErrInvalidKey means key material has the wrong length or encoding.
	// Messages wrapping it state lengths, never key bytes.
	ErrInvalidKey = errors.New("phi: invalid key")
)
