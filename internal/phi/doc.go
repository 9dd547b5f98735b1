// Package phi encrypts the protected health information (PHI) inside event
// payloads and manages the keys that protect it. It does no database I/O: the
// event store decides where wrapped keys and ciphertext live.
//
// The scheme is envelope encryption with one data key (DEK) per data subject
// (patient):
//
//   - Split moves the PHI fields an EventSpec lists out of a payload into a
//     separate JSON object; the rest stays in the clear so projections,
//     indexes and hashes can use it.
//   - The PHI object is sealed with AES-256-GCM under the subject's DEK, with
//     EventAAD(tenant, event id) as additional data so ciphertext cannot be
//     moved to another event or tenant.
//   - The DEK is stored only wrapped by the tenant's key-encryption key (KEK)
//     through a KeyProvider: LocalKeyProvider in development, a cloud KMS in
//     production.
//   - Crypto-shredding destroys a subject's wrapped DEK (and calls
//     DEKCache.Forget). The events stay and their hashes, computed over the
//     stored ciphertext, still verify; Erase then renders the PHI fields as
//     null on read.
//
// Key material never appears in errors, logs or fmt output: the types that
// hold it format as "[redacted]".
package phi
