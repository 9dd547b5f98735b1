// Package auth verifies OAuth 2.0 bearer access tokens (signed JWTs) and
// turns them into a chartstream.Principal. It also creates the development
// signing key and mints tokens with it for the `chartstream token` command.
//
// The package is pure token logic: it does no database or Redis I/O. Token
// revocation (by jti, with a TTL taken from Token.ExpiresAt) and the "tenant
// is active" check belong to the API middleware that calls Verify.
//
// Security properties a change must keep:
//
//   - Only asymmetric algorithms from Config.Algorithms are accepted, and a
//     key is only ever used with an algorithm of its own family, so neither
//     "none" nor an HMAC token keyed with public key bytes (algorithm
//     confusion) can verify.
//   - Every Verify failure is a *chartstream.Error with code EUNAUTHORIZED and
//     a short, stable, PHI-free message; claim values are never echoed. The
//     library error is kept in Err for logs.
//   - The development key is honoured only when Config.AllowDevKey is set.
package auth
