package auth

import (
	"crypto/sha256"
	"slices"
	"sync"
	"time"
)

// Verified tokens are kept a short while, so the signature of a token sent
// with every request is checked about once a minute instead of each time
// (an ECDSA verification was a tenth of the API's CPU under load). What can
// change in that minute is checked on every request all the same: expiry
// here, revocation and the tenant's status by the API.
const (
	// verifiedTTL bounds how long a verification is reused: a key removed
	// from the JWKS stops verifying cached tokens within it.
	verifiedTTL = time.Minute
	// maxVerified bounds the cache; when full it starts over.
	maxVerified = 50_000
)

// verifiedCache maps a token's SHA-256 to what verifying it gave.
type verifiedCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]verified
}

type verified struct {
	tok Token
	// until is when the entry must be verified again: verifiedTTL after it
	// was, or the token's expiry plus the leeway, whichever comes first.
	until time.Time
}

func (c *verifiedCache) get(key [sha256.Size]byte, now time.Time) (Token, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || !now.Before(e.until) {
		return Token{}, false
	}
	tok := e.tok
	tok.Principal.Roles = slices.Clone(tok.Principal.Roles) // callers own their copy
	return tok, true
}

func (c *verifiedCache) put(key [sha256.Size]byte, tok Token, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxVerified {
		c.m = make(map[[sha256.Size]byte]verified)
	}
	tok.Principal.Roles = slices.Clone(tok.Principal.Roles)
	c.m[key] = verified{tok: tok, until: until}
}
